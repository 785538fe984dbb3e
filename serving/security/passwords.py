"""Password hashing with salted scrypt (hashlib), encoded as ``scrypt$n$r$p$salt$hash``.

>>> encoded = hash_password("correct horse battery staple")
>>> verify_password("correct horse battery staple", encoded), verify_password("nope", encoded)
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P, DKLEN = 2**14, 8, 1, 32
MIN_LENGTH = 12
MAX_LENGTH = 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN, maxmem=256 * 1024 * 1024
    )


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` to store (never store the password)."""
    salt = os.urandom(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, N, R, P))}"


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


#: Checked against when the user does not exist, so timing does not reveal user names.
DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43


def check_strength(password: str) -> None:
    """Refuse passwords too short or too long to be reasonable (``ValueError``)."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValueError(f"password must have {MIN_LENGTH} to {MAX_LENGTH} characters")
