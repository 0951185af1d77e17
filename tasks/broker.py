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

3. The late-ack bookkeeping waits on no round trip. Each message a worker takes is put in the
   unacked hash and its index (ZADD + HSET) and removed at the ack (ZREM + HDEL); kombu wraps
   each pair in MULTI/EXEC and waits for its replies, a round trip before every task starts and
   another after it ends. Here each pair leaves in one write on a connection the channel keeps
   for them, and its replies are read before that connection's next write (QoS below). Nothing
   needs the pair atomic: Redis runs one connection's commands in order, so an ack never
   overtakes its entry; the sweep that hands an abandoned message back (``restore_by_tag``)
   reads the replies still owed first and WATCHes the hash, and a fresh entry is never old
   enough for it. A worker killed between taking a message and the write loses it either way
   (BRPOP took it off the queue), as before: the stuck-lead sweep re-drives such a lead from
   PostgreSQL.

4. A message's unacked entry is built around the text BRPOP returned. kombu writes the entry as
   ``dumps([message, exchange, routing_key])``, encoding again the message it has just decoded
   (~1 kB of JSON: ~0.1 M instructions, ~6 % of a no-op task's 1.6 M in a solo worker). kombu
   and tasks/dispatch.py write a message with json.dumps' defaults, so the entry is the same
   bytes; a message in another spelling is kept as it came, and a restore reads either back as
   the same message.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from contextlib import contextmanager
from queue import Empty

import redis
from kombu import transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str


class QoS(kombu_redis.QoS):
    """Late-ack bookkeeping written on a connection of its own, its replies read afterwards.

    Taking a message writes ZADD + HSET, acking it ZREM + HDEL: each pair leaves in one write,
    on one connection the channel keeps for them, and its replies are read before the next
    write (they are there by then). The task starts without waiting a round trip for the
    first pair, and the worker waits on none. Redis runs a connection's commands in order, so
    an ack never overtakes its message's entry; anything else that reads the entries (a
    restore, a requeue) reads the replies still owed first, so Redis has run those writes.
    A write or read that fails drops the connection and raises, as the round trip did.
    """

    _book: tuple | None = None        # (the pool it came from, the connection)
    _unread = 0                       # replies owed on it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._book_lock = threading.Lock()

    def _connection(self):
        pool = self.channel.pool
        book = self._book
        if book is None or book[0] is not pool or book[1].pid != os.getpid():
            self._drop()
            book = self._book = (pool, pool.get_connection())
        return book[1]

    def _drop(self) -> None:
        book, self._book, self._unread = self._book, None, 0
        if book is not None and book[1].pid == os.getpid():   # a forked child's is its parent's
            with contextlib.suppress(Exception):
                book[1].disconnect()
            with contextlib.suppress(Exception):
                book[0].release(book[1])

    def _read_owed(self, connection) -> None:
        while self._unread:
            self._unread -= 1
            reply = connection.read_response()
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply

    def _write(self, *commands) -> None:
        with self._book_lock:
            try:                          # replies owed: an earlier write's, there by now
                self._read_owed(self._connection())
            except redis.exceptions.ResponseError:
                raise
            except Exception:             # the connection died since (an idle one, a restart): what
                self._drop()              # it ran is unknown (a lost ack: the visibility timeout)
            for attempt in (1, 2):        # a stale connection: once more on a fresh one
                try:
                    connection = self._connection()
                    connection.send_packed_command(connection.pack_commands(commands),
                                                   check_health=False)
                    self._unread = len(commands)
                    return
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                    self._drop()
                    if attempt == 2:
                        raise

    def settle(self) -> None:
        """Read the replies still owed: Redis has run every bookkeeping write sent so far (unless
        the connection is lost: then what it ran is unknown, as it was with a lost round trip)."""
        with self._book_lock:
            if self._book is not None and self._book[1].pid == os.getpid():
                try:
                    self._read_owed(self._book[1])
                except redis.exceptions.ResponseError:
                    raise
                except Exception:
                    self._drop()

    def append(self, message, delivery_tag):
        if self.channel.global_keyprefix:   # kombu's prefixing client: its own round trips
            return super().append(message, delivery_tag)
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        received = self.channel._received
        if received is not None and received[1] is message._raw:   # the text BRPOP returned
            entry = f"[{received[0]}, {json.dumps(exchange)}, {json.dumps(routing_key)}]"
        else:
            entry = kombu_redis.dumps([message._raw, exchange, routing_key])
        self._write(("ZADD", self.unacked_index_key, time.time(), delivery_tag),
                    ("HSET", self.unacked_key, delivery_tag, entry))
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag):
        if self.channel.global_keyprefix:
            return super().ack(delivery_tag)
        self._write(("ZREM", self.unacked_index_key, delivery_tag),
                    ("HDEL", self.unacked_key, delivery_tag))
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        self.settle()
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client=None):
        self.settle()
        super().restore_unacked(client)

    def restore_visible(self, *args, **kwargs):
        self.settle()
        super().restore_visible(*args, **kwargs)

    def restore_by_tag(self, tag, client=None, leftmost=False):
        self.settle()
        super().restore_by_tag(tag, client=client, leftmost=leftmost)

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
    _received: tuple[str, dict] | None = None     # (the text, the message) while it is delivered

    def _brpop_read(self, **options):
        """kombu's, keeping the message's text while it is delivered (for QoS.append)."""
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()    # the next iteration reconnects
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            item = bytes_to_str(item)
            message = kombu_redis.loads(item)
            self._received = (item, message)
            try:
                self.connection._deliver(message, dest)
            finally:
                self._received = None
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()   # the BRPOP connection is idle: kombu's re-auth moment

    def _disconnect_pools(self):
        qos = self.__dict__.get("_qos")
        if isinstance(qos, QoS):      # the last ack's replies before its connection closes
            qos.settle()
            qos._drop()
        super()._disconnect_pools()

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
