"""`pingtree submit`, `lead` and `return`: leads in, one lead's journey, a buyer's return."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator

from pipeline.domain.fields import error_lines
from pipeline.entrypoints.cli.common import UserError, print_json, read_input, shown

_WHITESPACE = " \t\r\n"


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


def split_documents(text: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line, raw JSON text, problem) for each lead of a file.

    A file holds JSON lines, one or more objects (pretty-printed or not), or one array of
    objects. A part that is not JSON is reported with its line, and reading goes on at the
    next line that starts an object.
    """
    decoder = json.JSONDecoder()
    at = _skip(text, 0)
    in_array = text.startswith("[", at)
    if in_array:
        at = _skip(text, at + 1)
    while at < len(text):
        if in_array and text[at] == "]":
            if _skip(text, at + 1) < len(text):
                yield _line(text, at), None, "text after the closing ]"
            return
        try:
            _, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            yield _line(text, at), None, f"not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
            if in_array:
                return
            at = _next_object(text, at)
            continue
        yield _line(text, at), text[at:end], None
        at = _skip(text, end)
        if in_array and at < len(text) and text[at] == ",":
            at = _skip(text, at + 1)
        elif in_array and (at >= len(text) or text[at] != "]"):
            yield _line(text, at), None, "expected , or ] between the leads of the array"
            return


def _next_object(text: str, at: int) -> int:
    while True:
        newline = text.find("\n", at)
        if newline < 0:
            return len(text)
        at = newline + 1
        if text[at:].lstrip(" \t").startswith("{"):
            return _skip(text, at)


def cmd_submit(args) -> int:
    from pipeline.adapters import db
    from pipeline.domain.leads import InvalidLead
    from pipeline.entrypoints import wiring
    from pipeline.entrypoints.http import BadBody, parse_body
    from pipeline.service.intake import IdempotencyConflict, submit_lead
    wiring.install_nudge_sender()
    accepted = refused = 0
    try:
        for line, raw, problem in split_documents(read_input(args.file)):
            try:
                if problem:
                    raise BadBody(problem)
                print(submit_lead(parse_body(raw.encode())), flush=True)
                accepted += 1
            except (BadBody, InvalidLead, IdempotencyConflict) as exc:
                refused += 1
                errors = getattr(exc, "errors", None)
                print(f"line {line}: refused", file=sys.stderr)
                for text in error_lines(errors) if errors else [str(exc)]:
                    print(f"  {text}", file=sys.stderr)
    except db.DatabaseDown:
        print(f"{accepted} accepted, {refused} refused before PostgreSQL went away", file=sys.stderr)
        raise
    if not accepted and not refused:
        raise UserError(f"{args.file}: no leads in it (JSON lines, objects, or an array of objects)")
    print(f"{accepted} accepted, {refused} refused", file=sys.stderr)
    return 2 if refused else 0


def cmd_sample_leads(args) -> int:
    import random
    from datetime import UTC, datetime

    from pipeline.domain import samples
    from pipeline.domain.leads import VERTICALS
    if args.vertical and args.vertical not in VERTICALS:
        raise UserError(f"--vertical must be one of: {', '.join(VERTICALS)}")
    rng = random.Random(args.seed)
    for _ in range(args.count):
        print(json.dumps(samples.make_lead(rng, args.vertical, now=datetime.now(UTC))))
    return 0


def cmd_lead(args) -> int:
    from pipeline.adapters import db, views
    with db.transaction() as cur:
        view = views.lead_view(cur, args.id)
    if view is None:
        raise UserError(f"no such lead: {args.id}")
    if args.json:
        print_json(view)
        return 0
    print(f"lead {view['lead_id']}  {view['status']}  {view['vertical']}  score {view['score']}"
          f"  cycles {view['cycles']}")
    if view["reject_reasons"]:
        print(f"  rejected: {shown(', '.join(view['reject_reasons']))}")
    sale = view["sale"]
    if sale:
        print(f"  sold to {sale['buyer_id']} for {sale['price']:.2f} at {sale['sold_at']}")
        if sale["returned"]:
            print(f"  RETURNED at {sale['returned_at']}: {shown(sale['return_reason'])} (not billed)")
    for p in view["pings"]:
        bid = f"{p['bid']:.2f}" if p["bid"] is not None else "-"
        print(f"  {p['kind']:8} c{p['cycle']} t{p['tier']} {p['buyer_id']:16} {p['outcome']:13}"
              f" bid {bid:>8}  {p['latency_ms'] if p['latency_ms'] is not None else '-':>5} ms"
              f"  {shown(p['reason'])}")
    for s in view["skipped"]:
        print(f"  skipped  {s['buyer_id']:16} {shown(s['reason'])}")
    for p in view["posts"]:
        late = f"  late answer: {p['late_outcome']}" if p["late_outcome"] else ""
        print(f"  post     #{p['attempt']} {p['buyer_id']:16} {p['outcome'] or 'in flight':13}"
              f" {p['http_status'] or '-'}  {p['reason'] or ''}{late}")
    for t in view["timeline"]:
        print(f"  {t['at']}  {t['status']}{'  ' + t['note'] if t.get('note') else ''}")
    tasks = [view["lead_id"]] + [a["auction_id"] for a in view["auctions"]]
    print(f"  in Flower, search for: {'  '.join(tasks)}")
    return 0


def cmd_return(args) -> int:
    from pipeline.adapters import db, store, views
    with db.transaction() as cur:
        if store.lead_row(cur, args.id) is None:
            raise UserError(f"no such lead: {args.id}")
        done = views.return_lead(cur, args.id, args.reason)
    if not done:
        raise UserError(f"not returned: lead {args.id} has no sale that is not already returned")
    print("returned: no longer billed")
    return 0


def add_parsers(sub) -> None:
    submit = sub.add_parser("submit", help="submit leads from a file: JSON lines, objects, or an array")
    submit.add_argument("file", help="the leads file (see config/examples/leads.jsonl), or - for stdin")
    submit.set_defaults(func=cmd_submit)

    sample = sub.add_parser("sample-leads", help="print generated leads (consent given now) as JSON lines,"
                            " to try `submit` with")
    sample.add_argument("--count", type=int, default=10, help="how many (default %(default)s)")
    sample.add_argument("--vertical", help="only this vertical (default: every vertical, at random)")
    sample.add_argument("--seed", type=int, help="the same seed gives the same leads")
    sample.set_defaults(func=cmd_sample_leads)

    lead = sub.add_parser("lead", help="one lead: status, sale, return, pings, timeline (no personal data)")
    lead.add_argument("id", help="the lead id that submit printed")
    lead.add_argument("--json", action="store_true", help="the lead view as JSON (as GET /v1/leads/ID)")
    lead.set_defaults(func=cmd_lead)

    ret = sub.add_parser("return", help="record a buyer's return of a sold lead (no longer billed)")
    ret.add_argument("id", help="the sold lead's id")
    ret.add_argument("--reason", required=True, help="why the buyer returned it, e.g. \"disconnected\"")
    ret.set_defaults(func=cmd_return)
