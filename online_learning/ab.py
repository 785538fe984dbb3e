"""Stable A/B assignment of HTTP callers to the champion or the challenger arm.

A caller's arm depends only on ``(salt, caller_id, split)``: BLAKE2b keyed with the salt
hashes the caller id to 64 bits, read as a uniform number ``u`` in ``[0, 1)``; the caller
gets the champion when ``u < split``. The same caller lands in the same arm in every
process, on every machine and after restarts — never Python's ``hash()``, which is salted
per process. Changing the salt reshuffles everybody (a new experiment); moving ``split``
only moves the callers whose ``u`` lies between the old and the new split.

>>> assign("user-42", split=1.0)
'champion'
>>> assign("user-42", split=0.0)
'challenger'
>>> assign("user-42") == assign("user-42")
True
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from tickcast.errors import TickcastError

Arm = Literal["champion", "challenger"]
ARMS: tuple[Arm, Arm] = ("champion", "challenger")
DEFAULT_SALT = "tickcast-ab-v1"
DEFAULT_SPLIT = 0.9
_SCALE = float(1 << 64)


class AssignmentError(TickcastError, ValueError):
    """An A/B split or caller id that cannot be used (``reason`` says which)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _key(salt: str) -> bytes:
    raw = salt.encode("utf-8")
    return raw if len(raw) <= 64 else hashlib.blake2b(raw).digest()


def bucket(caller_id: str, salt: str = DEFAULT_SALT) -> float:
    """The caller's uniform number in ``[0, 1)`` (BLAKE2b-64 keyed by ``salt``)."""
    if not isinstance(caller_id, str) or not caller_id:
        raise AssignmentError("bad_caller", "caller id must be a non-empty string")
    digest = hashlib.blake2b(caller_id.encode("utf-8"), digest_size=8, key=_key(salt)).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(caller_id: str, split: float = DEFAULT_SPLIT, salt: str = DEFAULT_SALT) -> Arm:
    """``'champion'`` when the caller's bucket is below ``split`` (share of champion traffic)."""
    if not 0.0 <= split <= 1.0:
        raise AssignmentError("bad_split", f"split must be within [0, 1], got {split!r}")
    return "champion" if bucket(caller_id, salt) < split else "challenger"


class AssignmentCounter:
    """Counts of assignments per arm (what the API reports as A/B state)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(ARMS, 0))

    def add(self, arm: Arm, n: int = 1) -> None:
        """Count ``n`` requests served by ``arm``."""
        self.counts[arm] += n

    def assign(self, caller_id: str, split: float = DEFAULT_SPLIT, salt: str = DEFAULT_SALT) -> Arm:
        """Assign and count in one call."""
        arm = assign(caller_id, split, salt)
        self.add(arm)
        return arm

    def report(self) -> dict[str, float]:
        """Counts per arm and the observed champion share."""
        total = sum(self.counts.values())
        share = self.counts["champion"] / total if total else float("nan")
        return {"champion": self.counts["champion"], "challenger": self.counts["challenger"],
                "total": total, "champion_share": share}  # fmt: skip


def assignment_counts(
    caller_ids: Iterable[str], split: float = DEFAULT_SPLIT, salt: str = DEFAULT_SALT
) -> dict[str, int]:
    """How many of ``caller_ids`` go to each arm."""
    counter = AssignmentCounter()
    for caller in caller_ids:
        counter.assign(caller, split, salt)
    return {arm: counter.counts[arm] for arm in ARMS}
