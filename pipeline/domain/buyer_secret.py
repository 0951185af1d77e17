"""A buyer's signing secret: ``whsec_`` + the base64 of at least 24 random bytes (Standard Webhooks).

The HMAC key is the decoded bytes, exactly as the Standard Webhooks libraries read the
secret, so a buyer verifies pingtree's signatures with any of them. Any other form is refused:
a library would decode it to another key (or to none) and the buyer could not verify.
"""
from __future__ import annotations

import base64
import binascii
import os

PREFIX = "whsec_"
MIN_BYTES = 24
# 24 random bytes have ~23 distinct values; fewer than this is a typed or repeated key.
MIN_DISTINCT = 12
HINT = "`pingtree buyer secret` prints a fresh one"


class InvalidSecret(ValueError):
    """A secret that is not whsec_ + base64 of at least 24 random bytes."""


def secret_bytes(secret: object) -> bytes:
    """The HMAC key of a secret, or InvalidSecret saying what is wrong with it."""
    if not secret:
        raise InvalidSecret(f"is missing: every buyer needs {PREFIX} + the base64 of at least "
                            f"{MIN_BYTES} random bytes")
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise InvalidSecret(f"must be {PREFIX} followed by the base64 of at least {MIN_BYTES} random "
                            "bytes (a plain string is keyed differently by every library)")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"is not valid base64 after {PREFIX} (standard alphabet, with its "
                            "= padding)") from None
    if len(key) < MIN_BYTES:
        raise InvalidSecret(f"has {len(key)} bytes: at least {MIN_BYTES} random bytes are needed")
    if len(set(key)) < MIN_DISTINCT:
        raise InvalidSecret("does not look random (too few distinct bytes)")
    return key


def secret_problem(secret: object) -> str | None:
    try:
        secret_bytes(secret)
    except InvalidSecret as exc:
        return str(exc)
    return None


def new_secret(size: int = 32) -> str:
    """A fresh secret of ``size`` random bytes."""
    return PREFIX + base64.b64encode(os.urandom(size)).decode()
