"""Standard Webhooks signatures for every ping and post a buyer receives."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TOLERANCE_S = 300


def secret_key(secret: str) -> bytes:
    """The HMAC key: Standard Webhooks secrets are ``whsec_`` + base64; anything else is used as text."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers; without a secret the signature header is left out."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = signature(secret, msg_id, timestamp, body)
    return headers


def verify(secret: str, headers: dict[str, str], body: bytes, now: int) -> bool:
    """True when one of the v1 signatures matches and the timestamp is within tolerance."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, ts = lower.get("webhook-id"), lower.get("webhook-timestamp")
    if not msg_id or not ts or not ts.isdigit() or abs(now - int(ts)) > TOLERANCE_S:
        return False
    expected = signature(secret, msg_id, int(ts), body)
    offered = lower.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, sig) for sig in offered)
