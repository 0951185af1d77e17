"""Every example in the README, docs/ and config/examples/ loads through the real schemas."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.domain.leads import VERTICALS, InvalidLead, parse_lead
from pipeline.domain.tree import InvalidTree, parse_tree
from pipeline.protocols import registry

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BUYER = {"id": "doc", "tier": 1, "verticals": list(VERTICALS),
         "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
         "ping_url": "https://buyer.example/ping", "post_url": "https://buyer.example/post"}
FENCE = re.compile(r"^(#+ [^\n]*)$|^```json\n(.*?)^```$", re.M | re.S)
WALKS = ((1, "waterfall"), (2, "auction"), (3, "round_robin"))
CELL_EXAMPLE = re.compile(r"\| `(\{.*\}|\"\w+\": .*)` \|\s*$")


def _json_blocks(page: Path):
    heading = ""
    for match in FENCE.finditer(page.read_text()):
        if match.group(1):
            heading = match.group(1)
        else:
            yield heading, match.group(2)


def _table_examples(page: Path):
    """(heading, the example of one field); a qualifier joins its vertical's whole example."""
    wholes = {heading: json.loads(block) for heading, block in _json_blocks(page)}
    heading = ""
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            heading = line
        found = CELL_EXAMPLE.search(line)
        if found and "…" not in found.group(1):
            text = found.group(1)
            doc = json.loads(text if text.startswith("{") else "{" + text + "}")
            if heading.strip("# `") in VERTICALS:
                doc = {**wholes[heading], **doc}
            yield heading, doc


def _lead_at_its_consent(lead: dict) -> dict:
    moment = datetime.fromisoformat(lead["consent"]["timestamp"])
    return parse_lead(lead, moment + timedelta(seconds=60))


def _whole_lead() -> dict:
    for heading, block in _json_blocks(ROOT / "docs" / "leads.md"):
        if "A whole lead" in heading:
            return json.loads(block)
    raise AssertionError("docs/leads.md has no whole lead")


def _tree(**parts) -> str:
    return json.dumps({"tiers": [{"tier": 1}], "buyers": [BUYER], **parts})


def _check(heading: str, doc: dict) -> None:
    """Load one example as what its heading says it is."""
    vertical = heading.strip("# `")
    if "tiers" in doc or "buyers" in doc:
        parse_tree(json.dumps(doc), VERTICALS)
    elif "integration" in doc:          # a buyer with its own API: loaded and rendered
        registry.parse_tree(_tree(tiers=[{"tier": t, "mode": m} for t, m in WALKS], buyers=[doc]),
                            VERTICALS)
    elif "contact" in doc:
        _lead_at_its_consent(doc)
    elif vertical in VERTICALS:
        _lead_at_its_consent({**_whole_lead(), "vertical": vertical, "qualifiers": doc})
    elif vertical.startswith("contact") or vertical.startswith("consent"):
        lead = _whole_lead()
        section = vertical.split("`")[0].split()[0]
        _lead_at_its_consent({**lead, section: {**lead[section], **doc}})
    elif vertical.startswith("source"):
        lead = _whole_lead()
        part = "form" if set(doc) & {"started_at", "submitted_at"} else "source"
        _lead_at_its_consent({**lead, part: {**lead[part], **doc}})
    elif vertical.startswith("network"):
        parse_tree(_tree(network=doc), VERTICALS)
    elif vertical.startswith("tiers"):
        parse_tree(_tree(tiers=[{"tier": 1, **doc}]), VERTICALS)
    elif vertical.startswith("buyers"):
        parse_tree(_tree(buyers=[{**BUYER, **doc}]), VERTICALS)
    elif vertical in ("geo", "schedule"):
        parse_tree(_tree(buyers=[{**BUYER, vertical: doc}]), VERTICALS)
    elif vertical == "rules":
        parse_tree(_tree(buyers=[{**BUYER, "rules": [doc]}]), VERTICALS)
    elif vertical == "The envelope":
        _lead_at_its_consent({**_whole_lead(), **doc})
    else:
        raise AssertionError(f"an example under {heading!r} that no test loads: {doc}")


EXAMPLES = [pytest.param(heading, block, id=f"{page.name}:{heading.strip('# `')[:30]}:{n}")
            for page in PAGES for n, (heading, block) in enumerate(_json_blocks(page))]
CELLS = [pytest.param(heading, doc, id=f"{page.name}:{heading.strip('# `')[:30]}:{json.dumps(doc)[:40]}")
         for page in PAGES for heading, doc in _table_examples(page)]


@pytest.mark.parametrize("heading, block", EXAMPLES)
def test_every_json_example_loads(heading, block):
    try:
        _check(heading, json.loads(block))
    except (InvalidTree, InvalidLead) as exc:
        pytest.fail(f"the example under {heading!r} is refused: {exc}")


@pytest.mark.parametrize("heading, doc", CELLS)
def test_every_field_example_in_a_table_loads(heading, doc):
    try:
        _check(heading, doc)
    except (InvalidTree, InvalidLead) as exc:
        pytest.fail(f"the field example {doc} under {heading!r} is refused: {exc}")


def test_there_are_examples_to_check():
    assert len(EXAMPLES) >= 10 and len(CELLS) >= 60


def test_the_example_leads_file_has_a_valid_lead_of_every_vertical():
    lines = (ROOT / "config" / "examples" / "leads.jsonl").read_text().splitlines()
    leads = [_lead_at_its_consent(json.loads(line)) for line in lines]
    assert sorted(lead["vertical"] for lead in leads) == sorted(VERTICALS)


def test_the_example_tree_loads():
    parse_tree((ROOT / "config" / "examples" / "tree.json").read_text(), VERTICALS, allow_private=True)


def test_the_docs_never_point_outside_the_project():
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"SPEC|DESIGN\.md|shared/", text), page.name


def test_every_link_to_a_file_of_the_project_exists():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_setting_the_code_reads_is_in_the_readme_table():
    read = set(re.findall(r'env\.\w+\("([A-Z_]+)"', (ROOT / "config" / "settings.py").read_text()))
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    missing = sorted(name for name in read if not any(f"`{name}`" in row for row in rows))
    assert len(read) > 20 and missing == []
