"""A simulated buyer fleet, all buyers in one aiohttp server, each speaking its own style.

Used by ``make demo``, the tests and the benchmark (``pingtree mock-buyers``). One asyncio
process hosts every buyer so that thousands of pings per second cost little CPU.

Fleet file (JSON)::

    {
      "defaults": {"latency_ms": {"dist": "lognormal", "median_ms": 60, "sigma": 0.5}},
      "network": {...},          # optional: copied into the tree by tree_for_fleet()
      "tiers": [...],            # optional: likewise
      "buyers": [
        {"id": "provider-a",                 # URL-safe, must not start with "_"
         "name": "Provider A",               # optional, for the tree
         "accept_rate": 0.8,                 # share of pings answered {"accept": true}
         "bid": [20.0, 40.0],                # answered bid: [min, max] uniform in cents,
                                             #   a number (fixed) or null (no bid in the answer)
         "reason": "cap",                    # reason given when a ping is rejected
         "latency_ms": {"dist": "lognormal", "median_ms": 80, "sigma": 0.5, "max_ms": 2000},
                                             #   or {"dist": "uniform", "min_ms": 5, "max_ms": 50}
                                             #   or {"dist": "fixed", "ms": 10}, or a bare number
         "hang_rate": 0.0, "hang_s": 30,     # share of pings answered only after hang_s
         "error_rate": 0.0,                  # share of pings answered HTTP 500
         "invalid_json_rate": 0.0,           # share answered 200 with a body that is not JSON
         "pre_ping_eligible_rate": 1.0,      # share of pre-pings answered {"eligible": true}
         "post_reject_rate": 0.0,            # share of posts answered {"accepted": false}
         "post_reject_reason": "duplicate",
         "post_error_rate": 0.0,             # share of posts answered HTTP 503 (retryable)
         "secret": "whsec_...",              # optional (native style): the secret it verifies
                                             #   with (default: one derived from its id)
         "enforce_signature": false,         # true: a bad signature is answered 401
         "style": "native",                  # native, xml, form, json, text or direct (styles.py):
                                             #   how it reads requests and writes answers; the
                                             #   tree gives a non-native buyer the integration
                                             #   that speaks its style
         "api_key": "key-...",               # a non-native buyer's key (default key-<id>); a
                                             #   request without it is answered 401
         "tree": {"tier": 1, "priority": 10, "pre_ping": true, "min_score": 60}}
                                             #   optional: extra fields for tree_for_fleet();
                                             #   "pre_ping": true adds a pre_ping_url
      ]
    }

Every buyer field but ``id`` is optional; ``defaults`` fills what a buyer leaves out.

Routes: ``POST /{buyer}/ping`` (any method: the text style pings with GET),
``POST /{buyer}/pre_ping``, ``POST /{buyer}/post`` (unknown buyer: 404), and for tests:
``GET /_stats``, ``GET /_posts[?lead_id=&buyer_id=]``,
``GET /_pings?lead_id=...``, ``GET /_fleet``, ``PUT /_fleet``, ``POST /_reset``.

Determinism: with a seed, each buyer draws from its own ``random.Random`` per kind (ping,
pre-ping, post), and every draw is made for every request whatever the outcome, so a buyer's
answers depend only on the seed and how many requests that buyer has had, not on other
buyers' traffic or on which failure rates are set. ``/_reset`` restarts the streams.

A hang or an error is decided before the accept draw and wins over it; a hung ping is
finally answered with its accept/reject (a late answer). A post answered 503 is not
remembered, so a retry with the same Idempotency-Key is processed afresh, as a real buyer
would; any other answer is replayed for the same key and counted in ``post_duplicates``.
Counters: ``pings = accepts + rejects + hangs + errors + invalid_json``; ``posts`` counts
posts processed once (the ``/_posts`` records), not duplicates or 503s.

The server records no contact data: posts keep ids, price, keys, the consent text's hash
and the phone's shape (e164, digits, dashed); a non-native ping record keeps its fields.

Modules: fleet.py (the config and its tree), styles.py (each style's wire), server.py
(the aiohttp handlers), process.py (a server in a subprocess), this one (the command line).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.devtools.mockbuyers.fleet import (  # noqa: F401 - the package's public names
    VERTICALS,
    BadFleet,
    BuyerBehaviour,
    buyers_from,
    carries_personal_data,
    fleet_from_flags,
    mock_secret,
    tree_for_fleet,
    with_overrides,
)
from pipeline.devtools.mockbuyers.process import MockBuyersProcess, free_port  # noqa: F401
from pipeline.devtools.mockbuyers.server import build_app, run  # noqa: F401


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="fleet JSON file (see module docs)")
    parser.add_argument("--buyers", type=int, metavar="N",
                        help="without --config: a uniform fleet of N buyers (default 8)")
    parser.add_argument("--accept-rate", type=float, help="share of pings accepted")
    parser.add_argument("--bid", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="bid range in dollars")
    parser.add_argument("--latency-ms", type=float, help="fixed answer latency")
    parser.add_argument("--hang-rate", type=float, help="share of pings that hang")
    parser.add_argument("--hang-s", type=float, help="how long a hang lasts")
    parser.add_argument("--error-rate", type=float, help="share of pings answered 500")
    parser.add_argument("--post-reject-rate", type=float, help="share of posts rejected")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=9100, help="port to listen on (default %(default)s)")
    parser.add_argument("--seed", type=int, help="make every answer reproducible")
    parser.add_argument("--print-tree", action="store_true",
                        help="print the tree file for this fleet and exit (serve it with the same"
                             " flags without --print-tree)")


def fleet_from_args(args: argparse.Namespace) -> dict:
    """The fleet file, or a uniform fleet from flags; explicit flags override the file."""
    flags = {
        "accept_rate": args.accept_rate, "bid": args.bid, "hang_rate": args.hang_rate,
        "hang_s": args.hang_s, "error_rate": args.error_rate,
        "post_reject_rate": args.post_reject_rate,
        "latency_ms": args.latency_ms,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if args.config:
        if args.buyers is not None:
            raise BadFleet("--buyers and --config exclude each other")
        fleet = json.loads(Path(args.config).read_text())
        fleet = with_overrides(fleet, {k: list(v) if k == "bid" else v for k, v in given.items()})
        buyers_from(fleet)
        return fleet
    return fleet_from_flags(args.buyers if args.buyers is not None else 8, **given)


def main_from_args(args: argparse.Namespace) -> int:
    try:
        fleet = fleet_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"mock-buyers: {exc}", file=sys.stderr)
        return 2
    if args.print_tree:
        print(json.dumps(tree_for_fleet(fleet, f"http://{args.host}:{args.port}"), indent=2))
        # The tree names this fleet's buyers: a server started with other flags answers 404.
        same = " ".join(a for a in sys.argv[1:] if a not in ("--print-tree", "mock-buyers"))
        print(f"mock-buyers: this tree's buyers are served by `pingtree mock-buyers {same}` (the same flags"
              f" without --print-tree) on {args.host}:{args.port}, not by another fleet", file=sys.stderr)
        return 0
    run(args.host, args.port, fleet, args.seed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pingtree mock-buyers",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))
