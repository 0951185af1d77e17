"""Standard Webhooks signatures for every ping and post a buyer receives."""
from __future__ import annotations

import base64
import hmac
from functools import lru_cache

from pipeline.domain.buyer_secret import secret_bytes, secret_problem

__all__ = ["sign_headers", "signature", "secret_problem"]


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 HMAC-SHA256 of "id.timestamp.body", keyed with the secret's decoded bytes."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(_key(secret), signed, "sha256")).decode()


@lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    """A secret's HMAC key, decoded and checked once per process (InvalidSecret is not kept)."""
    return secret_bytes(secret)


def sign_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers; a secret that is not a valid one raises InvalidSecret."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body)}
