"""Personal data stays out of the broker, task results and worker logs."""
from __future__ import annotations

import base64
import binascii
import json
import time
import uuid

import pytest
import redis
from celery.signals import after_task_publish

from config.settings import settings
from pipeline import submit_lead
from pipeline.domain import validation
from tests.helpers import WORKER_LOG, make_lead, one_taker, wait_for

pytestmark = pytest.mark.integration



def _texts(raw) -> list[str]:
    """A stored Redis value as text, plus any base64 message body inside it, decoded."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    out = [text]
    try:
        doc = json.loads(text)
    except ValueError:
        return out
    if isinstance(doc, list) and doc and isinstance(doc[0], str):   # unacked: [message, ...]
        return out + [t for item in doc if isinstance(item, str) for t in _texts(item)]
    if isinstance(doc, dict) and isinstance(doc.get("body"), str):
        if (doc.get("properties") or {}).get("body_encoding") == "base64":
            try:
                out.append(base64.b64decode(doc["body"]).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
    return out


def redis_dump(client: redis.Redis) -> str:
    """Every key and value of the test Redis db, message bodies decoded."""
    texts = []
    for key in client.scan_iter(count=500):
        texts.append(key.decode("utf-8", "replace"))
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [v for pair in client.hgetall(key).items() for v in pair]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        for value in values:
            if value is not None:
                texts += _texts(value)
    return "\n".join(texts)


def personal_values(lead: dict) -> list[str]:
    contact = lead["contact"]
    e164 = validation.normalise_phone(contact["phone"])
    return [contact["email"], contact["email"].lower(), contact["phone"], e164, e164[1:],
            contact["last_name"], contact["address"], lead["consent"]["ip"]]


def test_no_personal_data_in_broker_results_or_worker_logs(clean_db, workers, buyers):
    from tasks.app import app
    one_taker(buyers)
    token = uuid.uuid4().hex[:12]
    lead = make_lead(contact__last_name=f"Lastname{token}",
                     contact__email=f"Pii.{token}@Example.com",
                     contact__address=f"{token} Ocean Drive")
    lead["consent"]["ip"] = "198.51.100.77"
    secrets = personal_values(lead)

    sent: list[dict] = []

    def remember(sender=None, headers=None, body=None, **_):
        sent.append({"task": sender, "id": headers["id"], "message": json.dumps([headers, body])})

    client = redis.Redis.from_url(settings.redis_url)
    # Hold the deliver queue so the lead's messages and chord results sit in Redis to be read.
    held = app.control.cancel_consumer("deliver", reply=True, timeout=5, limit=1)
    assert held, "the test worker did not answer the control message"
    after_task_publish.connect(remember)
    try:
        lead_id = submit_lead(lead)
        assert wait_for(lead_id, ("delivering", "rejected", "unsold"))["status"] == "delivering"
        until = time.monotonic() + 10
        while lead_id not in redis_dump(client) and time.monotonic() < until:
            time.sleep(0.05)
        dump = redis_dump(client)
    finally:
        after_task_publish.disconnect(remember)
        app.control.add_consumer("deliver", reply=True, timeout=5, limit=1)
    assert lead_id in dump                        # the deliver message for this lead was read
    for secret in secrets:
        assert secret not in dump, secret
    # What the intake sent: the lead id, nothing else.
    assert [(m["task"], json.loads(m["message"])[1][0]) for m in sent] == [
        ("pingtree.validate_lead", [lead_id])]
    for secret in secrets:
        assert secret not in sent[0]["message"]

    assert wait_for(lead_id, ("sold",))["status"] == "sold"
    assert buyers.posts(lead_id)[0]["accepted"]
    dump = redis_dump(client)
    for secret in secrets:
        assert secret not in dump, secret

    # The worker log of this run names the lead's tasks, and holds none of its personal data.
    until = time.monotonic() + 5
    marker = f"pingtree.validate_lead[{sent[0]['id']}]"
    while marker not in WORKER_LOG.read_text(errors="replace") and time.monotonic() < until:
        time.sleep(0.05)
    log = WORKER_LOG.read_text(errors="replace")
    assert marker in log
    for secret in [*secrets, token]:
        assert secret not in log, secret
