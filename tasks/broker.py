"""Workaround: a worker must survive a Redis restart (kombu 5.7 / celery 5.7 redis transport).

When the broker connection drops, celery's ``on_connection_error_after_connected`` calls
``connection.collect()`` — which detaches the transport (``transport.client = None``) after
its own channel close failed against the dead server — and then ``connection.close()``, which
closes the default channel again: ``QoS.restore_unacked_once`` asks the redis channel for a new
pool, and ``Channel._connparams`` reads ``self.connection.client.hostname`` from ``None``. The
AttributeError is not a connection error, so ``ignore_errors`` lets it through and the worker
exits ("Unrecoverable error: AttributeError(\"'NoneType' object has no attribute
'hostname'\")"); the same failure mode as celery/kombu#582 (channel close after the
connection's client is gone). Here a detached channel raises redis' ConnectionError instead:
celery ignores it, skips a restore that could not reach Redis anyway (the messages stay in
Redis' unacked set and are restored after the visibility timeout), and reconnects.
"""
from __future__ import annotations

import redis
from kombu.transport import redis as kombu_redis

_connparams = kombu_redis.Channel._connparams


def _connparams_or_connection_error(self, asynchronous=False):
    if self.connection.client is None:
        raise redis.exceptions.ConnectionError("the broker connection was closed")
    return _connparams(self, asynchronous=asynchronous)


def install() -> None:
    """Patch once; idempotent."""
    if kombu_redis.Channel._connparams is not _connparams_or_connection_error:
        kombu_redis.Channel._connparams = _connparams_or_connection_error
