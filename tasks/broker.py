"""The Redis transport of every pingtree Celery process: kombu's, with three small changes.

1. A worker survives a Redis restart (kombu 5.7 / celery 5.7 redis transport). When the broker
   connection drops, celery's ``on_connection_error_after_connected`` calls
   ``connection.collect()`` — which detaches the transport (``transport.client = None``) after its
   own channel close failed against the dead server — and then ``connection.close()``, which
   closes the default channel again: ``QoS.restore_unacked_once`` asks the redis channel for a
   new pool, and ``Channel._connparams`` reads ``self.connection.client.hostname`` from ``None``.
   The AttributeError is not a connection error, so ``ignore_errors`` lets it through and the
   worker exits ("Unrecoverable error: AttributeError(\"'NoneType' object has no attribute
   'hostname'\")"); the same failure mode as celery/kombu#582. Here a detached channel raises
   redis' ConnectionError instead: celery ignores it, skips a restore that could not reach Redis
   anyway (the messages stay in Redis' unacked set and are restored after the visibility
   timeout), and reconnects.

2. One redis-py client per channel (and connection pool), not one per command. kombu builds a
   new ``redis.Redis`` for every publish, event batch, unacked entry and ack
   (``Channel.conn_or_acquire``), and each one copies redis-py's ~200 response callbacks into a
   fresh dict: four per task in a stage worker. The client is thread-safe (every command takes a
   connection from the pool), so the channel keeps one until its pool is replaced (after a
   fork, or a lost connection).

3. The late-ack bookkeeping is pipelined without MULTI/EXEC. Each message a worker takes is put
   in the unacked hash and its index (ZADD + HSET) and removed at the ack (ZREM + HDEL); kombu
   wraps both pairs in a transaction, two more commands and replies each time. Nothing needs
   the pair atomic: both commands leave in one write and Redis runs them in order, the sweep
   that hands an abandoned message back (``restore_by_tag``) WATCHes the hash and takes a
   message only while its payload is there, and a fresh entry is never old enough for it. A
   worker killed between taking a message and the write loses it either way (BRPOP took it
   off the queue), as before: the stuck-lead sweep re-drives such a lead from PostgreSQL.
"""
from __future__ import annotations

from contextlib import contextmanager

import redis
from kombu import transport
from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    @contextmanager
    def pipe_or_acquire(self, pipe=None, client=None):
        if pipe:             # restore_by_tag's own transaction
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as client:
                yield client.pipeline(transaction=False)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _shared_client: redis.Redis | None = None

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make this the transport of redis://, rediss:// and redis+socket:// broker urls in this
    process: Celery, Flower and ``celery inspect`` all use it, with the url unchanged (Flower
    reads queue lengths by the url's scheme). Idempotent."""
    for scheme in ("redis", "rediss"):
        transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
