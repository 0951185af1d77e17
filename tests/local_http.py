"""A local HTTP server for the tests of buyer HTTP: a handler class served on 127.0.0.1 from a
thread (optionally behind TLS), its URL yielded, shut down afterwards."""
from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None,
            quiet: bool = False) -> Iterator[str]:
    """Serve ``handler`` and yield its base URL; ``quiet``: a client that hangs up is no error."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if quiet:
        httpd.handle_error = lambda request, address: None
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
