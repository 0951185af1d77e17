"""What operators read: `pingtree report --json`, `billing`, `return` and `lead --json`."""
from __future__ import annotations

import json
import time

import pytest

from pipeline import submit_lead
from tests.helpers import cli, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration


def test_report_billing_and_returns_after_real_sales(clean_db, workers, buyers):
    buyers.set_fleet({"defaults": {"latency_ms": 1}, "buyers": [
        {"id": "winner", "accept_rate": 1, "bid": 30.0},
        {"id": "loser", "accept_rate": 1, "bid": 10.0},
        {"id": "shy", "accept_rate": 0}]})
    load_tree(buyers.tree(network={"score_floor": 0, "duplicate_window_h": 0, "auction_timeout_s": 2}))
    sold = [submit_lead(make_lead("solar", seed=70 + i)) for i in range(3)]
    for lead_id in sold:
        wait_for(lead_id, ("sold",))

    report = json.loads(cli("report", "--json").stdout)
    assert report["leads"] == {"sold": 3}
    assert report["revenue"] == 90.0
    rows = {b["buyer_id"]: b for b in report["buyers"]}
    assert set(rows["winner"]) == {"buyer_id", "pings", "accepts", "timeouts", "errors", "wins", "sold",
                                   "post_rejects", "returns", "revenue", "p50_ping_ms", "p95_ping_ms",
                                   "posted", "late_accepts", "post_reject_rate", "paused_until",
                                   "pause_reason"}
    assert (rows["winner"]["posted"], rows["loser"]["posted"]) == (3, 0)
    assert report["unresolved"] == {}
    assert (rows["winner"]["pings"], rows["winner"]["accepts"], rows["winner"]["wins"],
            rows["winner"]["sold"], rows["winner"]["revenue"]) == (3, 3, 3, 3, 90.0)
    assert (rows["loser"]["accepts"], rows["loser"]["sold"]) == (3, 0)
    assert (rows["shy"]["pings"], rows["shy"]["accepts"]) == (3, 0)
    # The percentiles are those of the winner's own ping latencies, as each lead view shows them.
    latencies = sorted(p["latency_ms"] for lead_id in sold
                       for p in json.loads(cli("lead", lead_id, "--json").stdout)["pings"]
                       if p["buyer_id"] == "winner")
    assert rows["winner"]["p50_ping_ms"] == latencies[1]
    assert rows["winner"]["p95_ping_ms"] == round(latencies[1] + 0.9 * (latencies[2] - latencies[1]), 1)

    month = time.strftime("%Y-%m", time.gmtime())
    bill = json.loads(cli("billing", "--month", month, "--json").stdout)
    assert bill["buyers"] == [{"buyer_id": "winner", "leads": 3, "amount": 90.0}]

    returned = cli("return", sold[0], "--reason", "disconnected number")
    assert returned.returncode == 0
    assert cli("return", sold[0], "--reason", "twice").returncode != 0
    bill = json.loads(cli("billing", "--month", month, "--json").stdout)
    assert bill["buyers"] == [{"buyer_id": "winner", "leads": 2, "amount": 60.0}]
    report = json.loads(cli("report", "--json").stdout)
    assert (report["revenue"], report["returns"], report["returned"]) == (60.0, 1, 30.0)
    winner = next(b for b in report["buyers"] if b["buyer_id"] == "winner")
    assert (winner["sold"], winner["returns"], winner["revenue"]) == (3, 1, 60.0)
    text = cli("report").stdout
    assert "net of 1 returns worth 30.00" in text
    row = next(line for line in text.splitlines() if line.startswith("winner "))
    assert row.split()[-4:-2] == ["1", "60.00"]                          # returns, net revenue
    assert cli("billing", "--month", "2026-13").returncode == 2

    view = json.loads(cli("lead", sold[0], "--json").stdout)
    assert view["sale"]["returned"] and view["sale"]["return_reason"] == "disconnected number"
    last = view["timeline"][-1]
    assert (last["status"], last["note"]) == ("returned", "disconnected number")
    shown = cli("lead", sold[0]).stdout
    assert "RETURNED at" in shown and "disconnected number (not billed)" in shown
    # Flower finds a lead's tasks by the lead id, and its ping tasks by the auction ids shown.
    assert view["auctions"] and all(a["auction_id"] in shown for a in view["auctions"])

    view = json.loads(cli("lead", sold[1], "--json").stdout)
    assert view["status"] == "sold" and view["sale"]["buyer_id"] == "winner"
    assert cli("lead", "00000000-0000-0000-0000-000000000000").returncode == 2
