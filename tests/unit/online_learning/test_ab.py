"""A/B assignment: stable across processes, splits as configured, typed errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from online_learning.ab import (
    AssignmentCounter,
    AssignmentError,
    assign,
    assignment_counts,
    bucket,
)

CALLERS = [f"user-{i}" for i in range(200)]


def test_same_arms_in_a_fresh_process_with_another_hash_seed() -> None:
    code = (
        "import json, sys; from online_learning.ab import assign, bucket;"
        "ids = json.loads(sys.stdin.read());"
        "print(json.dumps([[assign(i, 0.5, 's1'), bucket(i, 's1')] for i in ids]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(CALLERS),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=str(Path(__file__).resolve().parents[3]),
    )
    theirs = json.loads(proc.stdout)
    ours = [[assign(i, 0.5, "s1"), bucket(i, "s1")] for i in CALLERS]
    assert theirs == ours


def test_bucket_is_keyed_blake2b() -> None:
    digest = hashlib.blake2b(b"user-1", digest_size=8, key=b"s1").digest()
    assert bucket("user-1", "s1") == int.from_bytes(digest, "big") / 2**64
    assert bucket("user-1", "s1") != bucket("user-1", "s2")


def test_split_shares_and_monotonic_moves() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    counts = assignment_counts(ids, split=0.9, salt="x")
    share = counts["champion"] / len(ids)
    assert abs(share - 0.9) < 0.01  # 5 binomial sds at n=20k
    at_90 = {i for i in ids if assign(i, 0.9, "x") == "challenger"}
    at_80 = {i for i in ids if assign(i, 0.8, "x") == "challenger"}
    assert at_90 <= at_80  # widening the challenger arm only moves callers into it


def test_counter_reports() -> None:
    counter = AssignmentCounter()
    for caller in CALLERS:
        counter.assign(caller, split=0.9)
    report = counter.report()
    assert report["total"] == 200
    assert report["champion"] + report["challenger"] == 200
    assert report["champion_share"] == report["champion"] / 200


@pytest.mark.parametrize(("caller", "split"), [("", 0.9), ("a", 1.5), ("a", -0.1)])
def test_bad_input_raises_typed_error(caller: str, split: float) -> None:
    with pytest.raises(AssignmentError) as info:
        assign(caller, split)
    assert info.value.reason in {"bad_caller", "bad_split"}
