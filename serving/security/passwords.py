"""Password hashing with salted scrypt (hashlib), encoded as ``scrypt$n$r$p$salt$hash``.

New hashes cost N = 2**17, r = 8, p = 1 (OWASP's current scrypt minimum): 128 MiB and about
0.4 s of one core each. A stored hash keeps the parameters it was made with, so hashes of the
former N = 2**14 still verify, and :func:`needs_rehash` tells the login path to replace them
(``serving.security.users.UserStore.authenticate``). Tests lower N through
``TICKCAST_PASSWORD_SCRYPT_N``; production refuses anything below 2**17.

>>> encoded = hash_password("correct horse battery staple", n=2**14)
>>> verify_password("correct horse battery staple", encoded), verify_password("nope", encoded)
(True, False)
>>> needs_rehash(encoded, N), needs_rehash(encoded, 2**14)
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P, DKLEN = 2**17, 8, 1, 32
MIN_LENGTH = 12
MAX_LENGTH = 1024
#: Most memory a stored hash may make us spend (scrypt needs 128 * r * (N + p + 2) bytes):
#: parameters beyond it are refused rather than allowed to exhaust the API's memory.
MAX_MEMORY = 512 * 1024 * 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _memory(n: int, r: int, p: int) -> int:
    """Bytes OpenSSL's scrypt needs (V: 128·r·(N+2), B: 128·r·p), with 1 MiB to spare."""
    return 128 * r * (n + 2) + 128 * r * p + 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = _memory(n, r, p)
    if maxmem > MAX_MEMORY:
        raise ValueError(f"scrypt parameters need {maxmem} bytes, more than {MAX_MEMORY}")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN, maxmem=maxmem)


def hash_password(password: str, *, n: int = N) -> str:
    """A salted scrypt hash of ``password`` with cost ``n`` to store (never the password)."""
    salt = os.urandom(16)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, n, R, P))}"


def needs_rehash(encoded: str, n: int = N) -> bool:
    """Whether a stored hash was made with other parameters than ``(n, R, P)`` (or is not one
    of ours): the login that just verified the password should store a fresh hash."""
    try:
        scheme, cost, r, p, _, _ = encoded.split("$")
        return (scheme, int(cost), int(r), int(p)) != ("scrypt", n, R, P)
    except ValueError:
        return True


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``, compared in constant time."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt" or len(password) > MAX_LENGTH:
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def dummy_hash(n: int = N) -> str:
    """A hash no password matches, checked when the user does not exist: it costs what a real
    hash of cost ``n`` costs, so timing does not reveal which user names exist."""
    return f"scrypt${n}${R}${P}$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43


def check_strength(password: str) -> None:
    """Refuse passwords too short or too long to be reasonable (``ValueError``)."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValueError(f"password must have {MIN_LENGTH} to {MAX_LENGTH} characters")
