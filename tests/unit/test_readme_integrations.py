"""The README's worked integration examples are what an operator copies: each must load as written."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.domain.leads import VERTICALS
from pipeline.protocols.integration.check import sample_facts
from pipeline.protocols.integration.protocol import IntegrationProtocol
from pipeline.protocols.interface import Outgoing
from pipeline.protocols.registry import parse_tree

README = Path(__file__).resolve().parents[2] / "README.md"
TIERS = [{"tier": 1, "mode": "waterfall"}, {"tier": 2, "mode": "auction"}, {"tier": 3, "mode": "round_robin"}]


def examples() -> list[dict]:
    text = README.read_text().split("### Worked examples", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_the_readme_has_one_example_per_buyer_style():
    assert [b["id"] for b in examples()] == ["xchange", "formhouse", "brightsolar", "oldtimer", "directdeal"]


@pytest.mark.parametrize("buyer", examples(), ids=lambda b: b["id"])
def test_each_readme_example_loads_and_renders_for_every_vertical_it_buys(buyer):
    tree = parse_tree(json.dumps({"network": {}, "tiers": TIERS, "buyers": [buyer]}), VERTICALS)
    [loaded] = tree["buyers"]
    protocol = IntegrationProtocol(loaded["id"], loaded["integration"], loaded["credentials"],
                                   bid_cents=loaded["bid_cents"], secret=None)
    for vertical in loaded["verticals"]:
        ping, post = sample_facts(vertical)
        out = protocol.post(post, 0)
        assert isinstance(out, Outgoing) and out.url.startswith("https://")
        assert post["lead"]["contact"]["zip"].encode() in out.body     # the full lead reaches the post
        if protocol.pings:
            assert isinstance(protocol.ping(ping, 0), Outgoing)
