"""``infra/kafka/kafka.sh``'s KRaft cluster ids: base64url of 16 bytes, never one the storage
tool would read as an option (a leading "-" failed one broker format in 64)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "infra" / "kafka" / "kafka.sh"


def test_cluster_ids_never_start_with_a_dash() -> None:
    # 600 draws: with the old one-shot draw, P(no id with a leading "-") = (63/64)^600 ~ 8e-5
    done = subprocess.run(
        ["bash", str(SCRIPT), "cluster-id", "600"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    ids = done.stdout.split()
    assert len(ids) == 600
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids), ids[:5]
    assert len(set(ids)) == 600
