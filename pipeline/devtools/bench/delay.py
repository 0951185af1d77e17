"""A TCP proxy that holds every chunk for a fixed time each way: Redis and PostgreSQL "across a
network" on one box (over TCP or their Unix sockets), so that the round trips a lead makes show up
as latency."""
from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pipeline.devtools.mockbuyers import free_port


class DelayProxy:
    """127.0.0.1:<port> -> ``target`` with ``one_way_ms`` added to each direction (RTT = 2x).

    It runs as a process of its own, so that the bench's own work never delays it. A target host
    of None makes the target port a Unix socket's path (the embedded servers).
    """

    def __init__(self, target_host: str | None, target_port: int | str, one_way_ms: float) -> None:
        self.target = (target_host, target_port)
        self.one_way_ms = one_way_ms
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> DelayProxy:
        self.process = subprocess.Popen(
            # Not `-m`: the bench package, imported first, has imported this module already.
            [sys.executable, "-c", "from pipeline.devtools.bench.delay import main; main()",
             "--port", str(self.port),
             "--target", f"{self.target[0] or 'unix'}:{self.target[1]}",
             "--one-way-ms", str(self.one_way_ms)])
        # Generous: a Python start-up on a loaded box can take seconds; a death is seen at once.
        until = time.monotonic() + 60
        while time.monotonic() < until and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the delay proxy did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)
            self.process = None

    def url_for(self, url: str) -> str:
        """``url`` with its host and port (or Unix socket) replaced by this proxy's."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        if parts.scheme == "unix":   # redis-py's unix:///path?db=N
            return f"redis://127.0.0.1:{self.port}/{dict(query).get('db', '0')}"
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        query = [(k, v) for k, v in query if k != "host"]   # libpq's ?host=/socket/dir
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.delay = self.one_way_ms / 1000
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.target[0] is None:
                up_reader, up_writer = await asyncio.open_unix_connection(self.target[1])
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A queue per direction keeps the order: each chunk leaves `delay` after it arrived.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                arrived, chunk = await queue.get()
                if not chunk:
                    break
                wait = arrived + self.delay - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(send())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((self.loop.time(), chunk))
        finally:
            queue.put_nowait((self.loop.time(), b""))
            await sender


def measured_rtt(direct_url: str, proxied_url: str, samples: int = 200) -> float:
    """Median extra milliseconds of a Redis PING through the proxy over a direct one."""
    import statistics

    import redis

    def median_ping_ms(url: str) -> float:
        client = redis.Redis.from_url(url)
        client.ping()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            client.ping()
            times.append((time.perf_counter() - started) * 1000)
        client.close()
        return statistics.median(times)

    return max(0.0, median_ping_ms(proxied_url) - median_ping_ms(direct_url))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.devtools.bench.delay")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port, or unix:/path/to/socket")
    parser.add_argument("--one-way-ms", type=float, required=True)
    args = parser.parse_args()
    if args.target.startswith("unix:"):
        proxy = DelayProxy(None, args.target.removeprefix("unix:"), args.one_way_ms)
    else:
        host, _, port = args.target.rpartition(":")
        proxy = DelayProxy(host, int(port), args.one_way_ms)
    proxy.port = args.port
    asyncio.run(proxy.serve())


if __name__ == "__main__":
    main()
