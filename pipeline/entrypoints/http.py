"""The HTTP intake API (`pingtree serve`): /v1/leads, /openapi.json, and the probes /livez, /readyz,
/healthz."""
from __future__ import annotations

import json
import logging
import math
import re

import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from config.settings import settings
from pipeline.adapters import db, heap, views
from pipeline.domain.leads import InvalidLead
from pipeline.entrypoints import metrics, openapi
from pipeline.entrypoints.access import Caller, Gate, Refused
from pipeline.service import beat, intake

log = logging.getLogger("pingtree.http")
MAX_DEPTH = 20
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class BadBody(ValueError):
    pass


def _reject_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise BadBody("duplicate keys in a JSON object")
    return dict(pairs)


def _reject_constant(name):
    raise BadBody(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON syntax but overflows to infinity: as bad as a literal Infinity.
    number = float(text)
    if not math.isfinite(number):
        raise BadBody(f"number out of range: {text[:32]}")
    return number


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_body(raw: bytes) -> dict:
    """Strict JSON (I-JSON): UTF-8, finite numbers, unique keys, bounded depth, an object."""
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_reject_duplicate_keys,
                         parse_constant=_reject_constant, parse_float=_finite_float)
    except BadBody:
        raise
    except UnicodeDecodeError as exc:
        raise BadBody(f"body is not UTF-8: byte {exc.start} is {raw[exc.start:exc.start + 1]!r}") from None
    except json.JSONDecodeError as exc:
        # Where it broke, so a hand-written body can be mended.
        raise BadBody(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                      f" (character {exc.pos})") from None
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"body is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise BadBody("body must be a JSON object")
    # Each level opens a container with a bracket: a text with no more brackets than that (in
    # its strings or not) is no deeper, and need not be walked.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(doc) > MAX_DEPTH:
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH} levels")
    # A "\ud800" escape decodes to a lone surrogate: not Unicode text (RFC 7493, I-JSON). UTF-8
    # itself cannot carry one (the decode above refuses it), so only a text with a \uD800-\uDFFF
    # escape can, or one that only looks like one ("\\ud800"): only such a text is checked.
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadBody("body has an unpaired surrogate escape") from None
    return doc


def _json(body: dict, status: int, **headers) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def create_app() -> Flask:
    app = Flask("pingtree")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    gate = Gate(settings.api_keys, settings.redis_url, settings.rate_limit, settings.auth_fail_limit)
    description = openapi.document()

    @app.before_request
    def admit():
        if request.path.startswith("/v1"):
            caller = admitted(gate, request)
            if isinstance(caller, Response):
                return caller
            g.caller = caller
        return None

    @app.post("/v1/leads")
    def post_lead():
        return accept_lead(request, g.caller)

    # POST /v1/leads, the API's one busy route, is answered without Flask's request machinery
    # around it (its context, URL matching, session, signals, hooks: ~0.3 M instructions a
    # request): the same gate, route and error handlers, on werkzeug's own request and the
    # same Response. Every other request, and this one under a SCRIPT_NAME, goes through Flask.
    class LeadRequest(Request):
        max_content_length = settings.max_body_bytes      # Flask's MAX_CONTENT_LENGTH

    flask_wsgi = app.wsgi_app

    def wsgi_app(environ, start_response):
        if (environ.get("PATH_INFO") != "/v1/leads" or environ.get("REQUEST_METHOD") != "POST"
                or environ.get("SCRIPT_NAME")):
            return flask_wsgi(environ, start_response)
        req = LeadRequest(environ)
        try:
            caller = admitted(gate, req)
            response = caller if isinstance(caller, Response) else accept_lead(req, caller)
        except HTTPException as exc:       # the body's stream past MAX_CONTENT_LENGTH: 413
            response = too_large(exc) if exc.code == 413 else internal_error(exc, "POST", "/v1/leads")
        except Exception as exc:
            response = internal_error(exc, "POST", "/v1/leads")
        return response(environ, start_response)

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]

    @app.get("/openapi.json")
    def openapi_json():
        return _json(description, 200)

    @app.get("/v1/leads/<lead_id>")
    def get_lead(lead_id: str):
        try:
            with db.transaction() as cur:
                view = views.lead_view(cur, lead_id, g.caller.publisher and g.caller.publisher.id)
        except db.DatabaseDown:
            return _json({"error": "storage unavailable, retry later"}, 503, **{"Retry-After": "5"})
        if view is None:
            return _json({"error": "no such lead"}, 404)
        return _json(view, 200)

    # Liveness: the process answers. No dependency here, or a PostgreSQL blip restarts every pod.
    @app.get("/livez")
    def livez():
        return _json({"status": "ok"}, 200)

    # Readiness of this API process: it can store leads and nudge them on (PostgreSQL, Redis).
    @app.get("/readyz")
    def readyz():
        checks = _dependencies()
        healthy = all(v == "ok" for v in checks.values())
        return _json({"status": "ok" if healthy else "unhealthy", **checks}, 200 if healthy else 503)

    # 200 when PostgreSQL and Redis answer, as /readyz; the body also shows each beat job.
    @app.get("/healthz")
    def healthz():
        checks = _dependencies()
        healthy = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if healthy else "unhealthy", **checks}
        if checks["postgresql"] == "ok":
            try:
                body["beat"] = beat.current_status()
            except Exception as exc:  # detail only: it never turns a healthy answer into an error
                body["beat"] = f"unknown: {type(exc).__name__}"
        return _json(body, 200 if healthy else 503)

    # A dead beat (nothing closes, re-runs or sweeps): 503 when any beat job is late. For the
    # uptime monitor and alerts, never for the API's own probes: intake goes on without beat.
    @app.get("/healthz/beat")
    def healthz_beat():
        try:
            jobs = beat.current_status()
        except db.DatabaseDown:
            return _json({"status": "unhealthy", "postgresql": "down"}, 503)
        late = sorted(job for job, state in jobs.items() if state["late"])
        return _json({"status": "late" if late else "ok", "late": late, "jobs": jobs},
                     503 if late else 200)

    # Prometheus scrapes this; like Flower's, keep it on the internal network.
    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), status=200, content_type=metrics.CONTENT_TYPE)

    app.errorhandler(413)(too_large)

    @app.errorhandler(404)
    def not_found(_):
        return _json({"error": "not found"}, 404)

    @app.errorhandler(405)
    def not_allowed(exc):
        return _json({"error": "method not allowed"}, 405, Allow=", ".join(exc.valid_methods or ()))

    @app.errorhandler(Exception)
    def internal(exc):
        return internal_error(exc, request.method, request.url_rule)

    return app


def admitted(gate: Gate, request: Request) -> Caller | Response:
    """The caller of a /v1 request, or the gate's refusal."""
    try:
        return gate.admit(request.headers.get("Authorization", ""), request.remote_addr or "unknown")
    except Refused as refused:
        return _json({"error": refused.message}, refused.status, **refused.headers)


def too_large(_) -> Response:
    return _json({"error": f"body over {settings.max_body_bytes} bytes"}, 413)


def accept_lead(request: Request, caller: Caller) -> Response:
    """POST /v1/leads, on an admitted request."""
    # Only JSON: a browser can send text/plain cross-site without asking first.
    if request.mimetype != "application/json":
        return _json({"error": "Content-Type must be application/json"}, 415)
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _json({"error": f"body over {settings.max_body_bytes} bytes"}, 413)
    # One byte past what may come: a body that runs on past the limit is one too many. With a
    # length the stream ends there anyway, and a buffer of that size is all a read needs (the
    # stream's read zeroes one of the size asked for: 64 KB a request otherwise).
    raw = request.stream.read((settings.max_body_bytes if length is None else length) + 1)
    if len(raw) > settings.max_body_bytes:
        return _json({"error": f"body over {settings.max_body_bytes} bytes"}, 413)
    try:
        payload = parse_body(raw)
    except BadBody as exc:
        return _json({"error": str(exc)}, 400)
    try:
        lead_id = intake.submit_lead(payload, request.headers.get("Idempotency-Key"),
                                     publisher=caller.publisher)
    except InvalidLead as exc:
        return _json({"errors": exc.errors}, 422)
    except intake.IdempotencyConflict as exc:
        return _json({"error": str(exc), "lead_id": exc.lead_id}, 409)
    except db.DatabaseDown:
        log.error("intake refused a lead: PostgreSQL is down")
        return _json({"error": "storage unavailable, retry later"}, 503, **{"Retry-After": "5"})
    return _json({"lead_id": lead_id, "status": "received"}, 202)


def internal_error(exc: Exception, method, rule) -> Response:
    """The answer to an exception a route raised (Flask's error handler for Exception)."""
    if isinstance(exc, HTTPException):          # any other HTTP error, as JSON
        return _json({"error": exc.name.lower()}, exc.code or 500)
    # Never the exception's text: a database or library message may quote personal data.
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "?"
    log.error("internal error on %s %s: %s at %s", method, rule, type(exc).__name__, where)
    return _json({"error": "internal error"}, 500)


def _dependencies() -> dict[str, str]:
    checks = {}
    try:
        with db.transaction() as cur:
            cur.execute("SELECT 1")
        checks["postgresql"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["postgresql"] = f"down: {type(exc).__name__}"
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    return checks


def _json_error_task():
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        """waitress answers a body over the limit or a malformed request itself, before the app
        sees it: in JSON, like every other error of the API."""

        def execute(self):
            error = self.request.error
            message = (f"body over {settings.max_body_bytes} bytes" if error.code == 413
                       else f"{error.reason}: {error.body}")
            body = json.dumps({"error": message}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    return JsonErrorTask


def _publisher_keys() -> bool:
    from pipeline.adapters import publishers
    try:
        with db.transaction() as cur:
            return publishers.any_live_key(cur)
    except db.DatabaseDown:
        return False                   # cannot tell: as good as none


def serve(addr: str | None = None, threads: int = 16) -> None:
    from waitress import serve as waitress_serve
    from waitress.channel import HTTPChannel

    # waitress has no option for its error bodies; its channel names the class that writes them.
    HTTPChannel.error_task_class = _json_error_task()

    if not settings.dev and not settings.api_keys and not _publisher_keys():
        # Every /v1 call would be open to anyone who reaches the port: refuse rather than run so.
        raise SystemExit("pingtree serve: refusing to start without API keys: set PINGTREE_API_KEYS"
                         " (comma-separated operator keys) or add a publisher key (pingtree publisher"
                         " add), or set PINGTREE_DEV=1 for development on this machine")
    host, _, port = (addr or settings.http_addr).rpartition(":")
    proxy = {"trusted_proxy": settings.trusted_proxy, "trusted_proxy_count": 1,
             "trusted_proxy_headers": {"x-forwarded-for"}} if settings.trusted_proxy else {}
    # Slow clients: waitress reads requests asynchronously and hands only whole ones to the
    # threads; an idle or half-sent connection is closed after channel_timeout, and
    # connection_limit bounds the open sockets (each costs a file descriptor, not a thread).
    app = create_app()
    heap.settle()                      # the start-up heap out of the collector's way (adapters/heap.py)
    waitress_serve(app, host=host or "127.0.0.1", port=int(port), threads=threads,
                   ident="pingtree", max_request_body_size=settings.max_body_bytes + 1,
                   connection_limit=settings.http_connection_limit,
                   channel_timeout=settings.http_channel_timeout_s,
                   cleanup_interval=max(1, settings.http_channel_timeout_s // 2),
                   clear_untrusted_proxy_headers=True, **proxy)
