"""The operator's first hour through `pingtree`: a tree that round-trips, submit sums up, errors in a line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.adapters import db
from tests.helpers import ROOT, cli, make_lead, pingtree, wait_for

EXAMPLE_TREE = ROOT / "config" / "examples" / "tree.json"
BUYER = {"id": "fresh", "tier": 1, "verticals": ["solar"], "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
         "ping_url": "https://buyer.example/ping", "post_url": "https://buyer.example/post"}


def _stored_secrets() -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT id, secret FROM buyers")
        return {r["id"]: r["secret"] for r in cur.fetchall()}


def test_tree_show_loads_back_unchanged_keeping_secrets_and_inactive_tiers(clean_db, tmp_path):
    assert cli("tree", "load", str(EXAMPLE_TREE)).returncode == 0
    shown = json.loads(cli("tree", "show", "--json").stdout)
    assert {b["secret"] for b in shown["buyers"]} <= {"***", None}    # never printed
    shown["tiers"][-1]["active"] = False
    path = tmp_path / "shown.json"
    path.write_text(json.dumps(shown))
    loaded = cli("tree", "load", str(path))
    assert loaded.returncode == 0, loaded.stderr
    first = cli("tree", "show", "--json").stdout
    assert json.loads(first) == shown                                  # the inactive tier stays so

    path.write_text(first)
    again = cli("tree", "load", str(path))
    assert again.returncode == 0 and "0 changed, 0 deactivated" in again.stdout
    assert cli("tree", "show", "--json").stdout == first
    written = {b["id"]: b.get("secret") for b in json.loads(EXAMPLE_TREE.read_text())["buyers"]}
    assert _stored_secrets() == written                               # not one became "***"


def test_a_masked_secret_with_nothing_stored_is_refused_naming_the_buyer(clean_db, tmp_path):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps({"tiers": [{"tier": 1}], "buyers": [{**BUYER, "secret": "***"}]}))
    result = cli("tree", "load", str(path))
    assert result.returncode == 2
    assert "buyers.fresh.secret" in result.stderr and "none is stored" in result.stderr
    assert _stored_secrets() == {}


def test_private_buyer_urls_are_refused_at_load_naming_the_setting(clean_db, tmp_path):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps({"tiers": [{"tier": 1}], "buyers": [
        {**BUYER, "id": "local", "ping_url": "https://127.0.0.1/ping", "post_url": "http://buyer.example/p"}]}))
    result = pingtree("tree", "load", str(path), env={"PINGTREE_ALLOW_PRIVATE_BUYERS": "0"})
    assert result.returncode == 2
    assert "buyers.local.ping_url: host 127.0.0.1 is not a public address" in result.stderr
    assert "buyers.local.post_url: must be https" in result.stderr
    assert result.stderr.count("PINGTREE_ALLOW_PRIVATE_BUYERS=1") == 1
    assert _stored_secrets() == {}


@pytest.mark.parametrize("args, expected", [
    (("tree", "load", "missing.json"), "pingtree: missing.json: No such file or directory"),
    (("submit", "config"), "config: is a directory"),
    (("up", "foo"), "no process foo in deploy/Procfile"),
    (("billing", "--month", "2026-13"), "--month must be YYYY-MM"),
    (("lead", "nope"), "no such lead: nope"),
])
def test_a_user_error_is_one_line_and_a_nonzero_exit(database, args, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli(*args)           # in this process: an exception that escaped main() fails here
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize("args, env, expected", [
    (("report",), {"PINGTREE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/pingtree"},
     "PostgreSQL unreachable at 127.0.0.1:1/pingtree"),
    (("tree", "schema"), {"PINGTREE_POST_TIMEOUT_S": "ten"}, "bad setting PINGTREE_POST_TIMEOUT_S"),
])
def test_a_setting_error_is_one_line_and_a_nonzero_exit(args, env, expected):
    result = pingtree(*args, env=env)     # settings are read when the process starts
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert expected in result.stderr


def test_bad_settings_are_each_named_and_ranges_checked():
    result = pingtree("tree", "schema", env={"PINGTREE_PING_SHARD_SIZE": "0", "PINGTREE_POST_ATTEMPTS": "-5",
                                              "PINGTREE_HTTP_ADDR": "nowhere"})
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "bad setting PINGTREE_HTTP_ADDR", "bad setting PINGTREE_PING_SHARD_SIZE",
        "bad setting PINGTREE_POST_ATTEMPTS"]
    assert "Traceback" not in result.stderr


def test_a_reader_that_goes_away_ends_quietly():
    command = Path(sys.executable).parent / "pingtree"
    proc = subprocess.Popen([str(command), "tree", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    proc.stdout.close()                                  # `pingtree tree schema | head -0`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) != 0
    assert stderr == b""


def test_version_and_help_on_every_argument():
    assert pingtree("--version").stdout.startswith("pingtree ")
    from pipeline.entrypoints.cli import build_parser
    parser = build_parser()
    undocumented = []

    def walk(p, path):
        for action in p._actions:
            if action.help is None and action.dest != "help":
                undocumented.append(f"{path} {action.dest}")
            for name, child in (getattr(action, "choices", None) or {}).items():
                if hasattr(child, "_actions"):
                    walk(child, f"{path} {name}")
    walk(parser, "pingtree")
    assert undocumented == []


def _leads(*seeds):
    return [make_lead(vertical, seed=seed) for vertical, seed in seeds]


def test_submit_takes_objects_arrays_and_json_lines_and_sums_up(clean_db, workers, tmp_path):
    good, also_good = _leads(("solar", 1), ("mortgage", 2))
    bad = make_lead("solar", seed=3, contact__phone="555")
    pretty = tmp_path / "pretty.json"
    pretty.write_text("\n".join(json.dumps(lead, indent=2) for lead in (good, bad, also_good)))
    result = cli("submit", str(pretty))
    assert result.returncode == 2
    assert len(result.stdout.split()) == 2                   # the accepted leads' ids
    bad_line = 1 + json.dumps(good, indent=2).count("\n") + 1
    assert f"line {bad_line}: refused\n  contact.phone: " in result.stderr
    assert result.stderr.endswith("2 accepted, 1 refused\n")

    array = tmp_path / "array.json"
    array.write_text(json.dumps(_leads(("auto_insurance", 4), ("debt_relief", 5)), indent=1))
    result = cli("submit", str(array))
    assert (result.returncode, len(result.stdout.split())) == (0, 2)
    assert result.stderr.endswith("2 accepted, 0 refused\n")

    lines = tmp_path / "leads.jsonl"
    lines.write_text(json.dumps(_leads(("solar", 6))[0]) + '\n{"vertical": \n'
                     + json.dumps(_leads(("solar", 7))[0]) + "\n")
    result = cli("submit", str(lines))
    assert result.returncode == 2 and len(result.stdout.split()) == 2
    assert "line 2: refused\n  not JSON" in result.stderr

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = cli("submit", str(empty))
    assert result.returncode == 2 and "no leads in it" in result.stderr


def test_a_lead_submitted_by_the_command_gets_its_validate_message(clean_db, workers, tmp_path):
    # The real command in its own process: its entry point installs the Celery sender.
    leads = tmp_path / "one.jsonl"
    leads.write_text(json.dumps(_leads(("solar", 8))[0]) + "\n")
    result = pingtree("submit", str(leads))
    assert result.returncode == 0, result.stderr
    [lead_id] = result.stdout.split()
    assert wait_for(lead_id, ("validated", "scored", "auctioning", "delivering", "held", "sold",
                              "rejected", "unsold"))["status"] != "received"


def test_up_says_plainly_that_it_waits_for_postgresql():
    command = Path(sys.executable).parent / "pingtree"
    env = {**os.environ, "PINGTREE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/pingtree"}
    proc = subprocess.Popen([str(command), "up", "api"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("waiting for PostgreSQL at 127.0.0.1:1/pingtree")
        assert "PINGTREE_DATABASE_URL" in first
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert "Traceback" not in proc.stderr.read()
