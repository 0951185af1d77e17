"""Which protocol a buyer speaks, compiled once per buyer version; the tree file checked with them."""
from __future__ import annotations

import threading

from pipeline.domain import tree as tree_file
from pipeline.domain.buyers import Buyer
from pipeline.protocols.integration.check import check_buyers, check_raw_buyers
from pipeline.protocols.integration.protocol import BrokenProtocol, IntegrationProtocol
from pipeline.protocols.interface import BuyerProtocol
from pipeline.protocols.native import NativeProtocol

MAX_COMPILED = 2000
_compiled: dict[tuple, BuyerProtocol] = {}
# Native protocols by buyer id, each with the very Buyer it was made for (the tree snapshot's,
# the same object for every lead until the tree changes): its secret is checked once.
_native: dict[str, tuple[Buyer, NativeProtocol]] = {}
_lock = threading.Lock()


def compile_buyer(buyer: Buyer) -> BuyerProtocol:
    problems: list[str] = []
    protocol = IntegrationProtocol(buyer.id, buyer.integration or {}, buyer.credentials,
                                   bid_cents=buyer.bid_cents, secret=buyer.secret, problems=problems)
    return BrokenProtocol(problems[0]) if problems else protocol


def for_buyer(buyer: Buyer) -> BuyerProtocol:
    """The buyer's protocol: native, or its integration compiled once per version of its row."""
    if buyer.integration is None:
        made = _native.get(buyer.id)
        if made is not None and made[0] is buyer:
            return made[1]
        native = NativeProtocol(buyer)
        with _lock:
            if len(_native) >= MAX_COMPILED:
                _native.clear()
            _native[buyer.id] = (buyer, native)
        return native
    key = (buyer.id, buyer.updated_at, buyer.bid_cents)
    protocol = _compiled.get(key)
    if protocol is None:
        protocol = compile_buyer(buyer)
        with _lock:
            if len(_compiled) >= MAX_COMPILED:
                _compiled.clear()       # old versions of reloaded trees; the current ones recompile
            _compiled[key] = protocol
    return protocol


def parse_tree(text: str, verticals: tuple[str, ...], allow_private: bool = False) -> dict:
    """The tree file checked whole, integrations rendered against sample leads; InvalidTree lists all."""
    try:
        tree = tree_file.parse_tree(text, verticals, allow_private)
    except tree_file.InvalidTree as exc:
        found = check_raw_buyers(text, verticals, allow_private)
        raise tree_file.InvalidTree(_merge(exc.errors, found), exc.private_urls) from None
    problems = check_buyers(tree["buyers"], verticals, allow_private)
    if problems:
        raise tree_file.InvalidTree({"buyers": {i: {"integration": found} for i, found in problems.items()}})
    return tree


def _merge(errors: dict, more: dict) -> dict:
    """The integration problems beside the rest, by buyer."""
    buyers = errors.setdefault("buyers", {})
    if not isinstance(buyers, dict):
        return errors
    for key, found in more.get("buyers", {}).items():
        entry = buyers.setdefault(key, {})
        if isinstance(entry, dict):
            existing = entry.get("integration")
            entry["integration"] = (existing if isinstance(existing, list) else []) + found["integration"]
    return errors
