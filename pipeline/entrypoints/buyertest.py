"""`pingtree buyer test ID [--lead FILE] [--send]`: what a buyer would be sent, how its answer reads."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.domain.leads import VERTICALS
from pipeline.protocols.integration.check import facts_from_payload, sample_facts
from pipeline.protocols.integration.protocol import MASK, IntegrationProtocol
from pipeline.protocols.interface import Answer, Outgoing
from pipeline.protocols.native import NativeProtocol

SHOWN_ANSWER = 2000
SECRET_HEADERS = ("webhook-signature",)


def add_parser(buyer) -> None:
    """`buyer test`, under the `buyer` command's subcommands."""
    test = buyer.add_parser("test", help="print the ping, pre-ping and post this buyer would get "
                                         "(credentials masked); --send sends the ping, never the post")
    test.add_argument("id", help="the buyer's id in the loaded tree")
    test.add_argument("--lead", metavar="FILE", help="an intake payload (JSON) instead of a sample lead")
    test.add_argument("--send", action="store_true", help="send the ping and show how its answer reads")
    test.set_defaults(func=cmd)


def _shown(buyer):
    """The same buyer with every credential and secret replaced by ***, for printing."""
    if buyer.integration is None:
        return NativeProtocol(buyer)
    return IntegrationProtocol(buyer.id, buyer.integration, dict.fromkeys(buyer.credentials, MASK),
                               bid_cents=buyer.bid_cents, secret=buyer.secret)


def _print_request(title: str, out) -> None:
    print(f"--- {title}")
    if not isinstance(out, Outgoing):
        print(f"(no request: {out.outcome}{': ' + out.reason if out.reason else ''})\n")
        return
    print(f"{out.method} {out.url}")
    for name, value in out.headers.items():
        if name.lower() in SECRET_HEADERS:
            value = MASK
        elif name.lower() == "authorization" and value.startswith("Basic "):
            value = f"Basic {MASK}"
        print(f"{name}: {value}")
    print()
    if out.body:
        print(out.body.decode("utf-8", "replace"))
    print()


def _facts(args, buyer) -> tuple[dict, dict] | None:
    if not args.lead:
        vertical = next((v for v in buyer.verticals if v in VERTICALS), VERTICALS[0])
        return sample_facts(vertical)
    try:
        payload = json.loads(Path(args.lead).read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.lead}: not a readable JSON lead: {exc}", file=sys.stderr)
        return None
    if not isinstance(payload, dict) or payload.get("vertical") not in VERTICALS \
            or not isinstance(payload.get("contact"), dict):
        print(f"{args.lead}: a lead needs a known vertical and a contact object", file=sys.stderr)
        return None
    return facts_from_payload(payload, f"pingtree-buyer-test:{args.lead}")


def cmd(args) -> int:
    from config.settings import settings
    from pipeline.adapters import db, store, transport
    from pipeline.protocols import registry
    with db.transaction() as cur:
        found = store.buyers(cur, [args.id])
    if not found:
        print(f"no such buyer: {args.id}", file=sys.stderr)
        return 1
    buyer = found[0]
    facts = _facts(args, buyer)
    if facts is None:
        return 2
    ping, post = facts
    protocol = registry.for_buyer(buyer)
    shown = _shown(buyer)
    now = int(time.time())
    kind = "native protocol" if buyer.integration is None else "integration"
    print(f"buyer {buyer.id} ({kind}), {ping['vertical']} lead {ping['lead_id']}"
          f"{' from ' + args.lead if args.lead else ' (sample)'}\n")
    if shown.pre_pings:
        _print_request("pre-ping", shown.pre_ping(ping, now))
    _print_request("ping", shown.ping(ping, now))
    _print_request("post (with the ping's reference SAMPLE-REF-1, at 25.00)", shown.post(post, now))
    if not args.send:
        return 0
    if not protocol.pings:
        print("--send: a direct-post buyer has no ping to send (the post is never sent from here)")
        return 0
    out = protocol.ping(ping, now)
    if isinstance(out, Answer):
        print(f"--send: the ping could not be built: {out.reason}")
        return 1
    reply = transport.send(out.url, out.body, out.headers, buyer.timeout_ms / 1000, method=out.method,
                           max_bytes=settings.max_answer_bytes, allow_private=settings.allow_private_buyers)
    print("=== sent the ping")
    if reply.failure:
        print(f"no usable answer: {reply.failure} after {reply.latency_ms} ms")
        return 1
    raw = reply.body.decode("utf-8", "replace")
    print(f"HTTP {reply.status} in {reply.latency_ms} ms, {len(reply.body)} bytes:")
    print(raw[:SHOWN_ANSWER] + (" ..." if len(raw) > SHOWN_ANSWER else ""))
    answer = protocol.read_ping(reply.status, reply.body, reply.latency_ms)
    bid = f"{answer.bid_cents / 100:.2f}" if answer.bid_cents is not None else "-"
    print(f"\nread as: {answer.outcome}  bid {bid}  ref {answer.ref or '-'}  reason {answer.reason or '-'}")
    return 0
