"""scrypt at N = 2**17 by default, old hashes upgraded at login, memory bounded."""

from __future__ import annotations

import time

from serving.security.passwords import (
    MAX_MEMORY,
    N,
    _memory,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from tests.support.serving_app import PASSWORD
from tickcast.config import Settings

OLD_N = 2**14


def test_new_hashes_cost_two_to_the_seventeenth() -> None:
    assert N == 2**17 == Settings().password_scrypt_n
    encoded = hash_password(PASSWORD)  # the default: ~0.4 s and 128 MiB, once
    assert encoded.startswith("scrypt$131072$8$1$")
    assert verify_password(PASSWORD, encoded)
    assert not needs_rehash(encoded)
    assert 128 * 1024 * 1024 < _memory(2**17, 8, 1) <= MAX_MEMORY


def test_old_hashes_still_verify_and_ask_for_a_rehash() -> None:
    old = hash_password(PASSWORD, n=OLD_N)
    assert old.startswith("scrypt$16384$")
    assert verify_password(PASSWORD, old)
    assert needs_rehash(old)
    assert needs_rehash("md5$whatever")


def test_stored_parameters_cannot_exhaust_memory() -> None:
    huge = "scrypt$4194304$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43  # would need 4 GiB
    started = time.perf_counter()
    assert verify_password(PASSWORD, huge) is False
    assert time.perf_counter() - started < 0.5


def test_unknown_users_cost_what_real_ones_cost() -> None:
    assert dummy_hash(2**15).startswith("scrypt$32768$8$1$")
    assert not verify_password(PASSWORD, dummy_hash(2**10))
