"""Standard Webhooks signatures for every ping and post a buyer receives."""
from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from pipeline.domain.buyer_secret import secret_bytes, secret_problem

__all__ = ["sign_headers", "signature", "secret_problem"]


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 HMAC-SHA256 of "id.timestamp.body", keyed with the secret's decoded bytes."""
    mac = _keyed(secret).copy()
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode()


@lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """A secret's HMAC, keyed once per process (the key decoded and checked: InvalidSecret is not
    kept); each signature works on a copy (hmac.digest sets the key up again every time)."""
    return hmac.new(secret_bytes(secret), digestmod=hashlib.sha256)


def sign_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers; a secret that is not a valid one raises InvalidSecret."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body)}
