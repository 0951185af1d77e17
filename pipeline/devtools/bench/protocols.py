"""CPU per ping of each buyer protocol: build the request, read an accepting answer (no network).

The HTTP call costs the same whatever the protocol, so the difference between an integration
and the native protocol is exactly this translation: templates rendered, the answer parsed and
its rules applied. Each figure is the best of a few rounds (the machine is shared).
"""
from __future__ import annotations

import time

from pipeline.devtools.mockbuyers.styles import STYLES
from pipeline.domain.buyers import Buyer
from pipeline.protocols.integration.check import sample_facts
from pipeline.protocols.integration.protocol import IntegrationProtocol
from pipeline.protocols.native import NativeProtocol

TARGET_EXTRA_MS = 0.2
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _cpu_ms(round_trip, iterations: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(iterations):
            round_trip()
        best = min(best, time.process_time() - started)
    return round(best / iterations * 1000, 4)


def measure(iterations: int = 2000) -> dict:
    """{style: {"ping_cpu_ms", "post_cpu_ms", "extra_ping_cpu_ms"}}, native first.

    A ping is its request built and an accepting answer read; a post is its request built."""
    ping, post = sample_facts("solar")
    answer_ok = {"native": b'{"accept":true,"bid":17.25,"ref":"R-1"}'}
    speakers = {"native": NativeProtocol(Buyer(id="n", name="n", tier=1, verticals=("solar",),
                                               ping_url="https://n.example/ping",
                                               post_url="https://n.example/post", secret=SECRET))}
    for name, style in STYLES.items():
        if name in ("native", "direct"):
            continue
        speakers[name] = IntegrationProtocol(name, style.integration(f"https://{name}.example"),
                                             {"api_key": "k-123456"}, bid_cents=None, secret=None)
        answer_ok[name] = style.ping_answer(True, 17.25, "R-1", "")
    results = {}
    for name, speaker in speakers.items():
        body = answer_ok[name]
        ping_ms = _cpu_ms(lambda s=speaker, b=body: s.read_ping(200, b, 5) and s.ping(ping, 0), iterations)
        post_ms = _cpu_ms(lambda s=speaker: s.post(post, 0), iterations // 2)
        results[name] = {"ping_cpu_ms": ping_ms, "post_cpu_ms": post_ms}
    native = results["native"]["ping_cpu_ms"]
    for row in results.values():
        row["extra_ping_cpu_ms"] = round(row["ping_cpu_ms"] - native, 4)
    return results


def report(results: dict) -> str:
    lines = ["protocol   ping CPU ms  over native  post build CPU ms",
             "---------  -----------  -----------  -----------------"]
    for name, row in results.items():
        lines.append(f"{name:9}  {row['ping_cpu_ms']:11.4f}  {row['extra_ping_cpu_ms']:11.4f}"
                     f"  {row['post_cpu_ms']:11.4f}")
    worst = max(row["extra_ping_cpu_ms"] for row in results.values())
    lines.append(f"worst integration ping over native: {worst:.4f} ms "
                 f"(target < {TARGET_EXTRA_MS} ms: {'met' if worst < TARGET_EXTRA_MS else 'NOT met'})")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
