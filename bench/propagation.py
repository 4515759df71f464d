"""One propagation check across 16 resolvers (14 that answer, `--answering`, and 2 that never
do), against the same queries sent one after another, in the same run.

The resolvers are real dnsmasq instances on 127.0.0.x with their cache off, each forwarding
to an upstream that answers after a delay: the cost of a recursive lookup that a public
resolver pays when the changed name is not in its cache. Two resolvers read every query and
never answer. Both variants use the same query code (steps/dns/check/probe.py) and the same
per-query timeout.

- check / timeout: one full check against the per-query timeout (target <= 1.1x): the check
  waits for the slowest server, and no longer;
- sequential / check: the same queries one after another, against one check (target >= 8x).

Arithmetic bounds the second figure: one after another, the two silent resolvers alone cost
two timeouts, so sequential / check <= 2 + (sum of the answering resolvers' latencies) / timeout.
8x needs the 14 answering resolvers to average 3/7 of the timeout each. The table prints the
bound for the latencies used.

    python bench/propagation.py [--timeout 1.0] [--latency-ms 20,150] [--answering 14] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import print_table  # noqa: E402
from cockpit.sandbox.dns.servers import Dnsmasq, SilentResolver, _UdpResponder, stop_all  # noqa: E402
from steps.dns.check.probe import ask  # noqa: E402
from steps.dns.check.propagation import Propagation, Requirement  # noqa: E402
from steps.dns.check.records import parse_values  # noqa: E402
from steps.dns.check.resolvers import Resolver  # noqa: E402

ZONE = "bench.test"
NAME = f"app.{ZONE}"
ANSWER = "198.51.100.20"
SILENT = 2


class SlowUpstream(_UdpResponder):
    """An authoritative stand-in that answers every A query after `delay` seconds."""

    def __init__(self, address: str, delay: float) -> None:
        super().__init__(address)
        self.delay = delay

    def answer(self, data: bytes) -> bytes | None:
        import dns.message
        import dns.rrset

        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.flags |= 0x0400  # AA
        question = query.question[0]
        reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", ANSWER))
        wire = reply.to_wire()

        def send(peer: Any = self._peer) -> None:
            self._socket.sendto(wire, peer)

        threading.Timer(self.delay, send).start()
        return None

    def _serve(self) -> None:  # as the parent's, but remembering who asked, for the delayed answer
        while not self._stopping.is_set():
            try:
                data, self._peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.answer(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=1.0, help="per-query timeout, seconds")
    parser.add_argument(
        "--latency-ms",
        default="20,150",
        help="the answering resolvers' upstream delays, spread evenly from MIN to MAX ms",
    )
    parser.add_argument("--answering", type=int, default=14, help="resolvers that answer (2 more never do)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    low, high = (float(x) / 1000 for x in args.latency_ms.split(","))
    delays = [low + (high - low) * i / max(1, args.answering - 1) for i in range(args.answering)]
    servers: list[Any] = []
    try:
        resolvers: list[Resolver] = []
        for i, delay in enumerate(delays):
            upstream = SlowUpstream(f"127.0.1.{i + 1}", delay).start()
            resolver = Dnsmasq(
                f"127.0.0.{i + 2}", zone=ZONE, upstream=f"{upstream.address}:{upstream.port}", cache=False
            ).start()
            servers += [upstream, resolver]
            resolvers.append(
                Resolver(name=f"answers in {delay * 1000:.0f} ms", address=resolver.address, port=resolver.port)
            )
        for i in range(SILENT):
            silent = SilentResolver(f"127.0.0.{args.answering + 2 + i}").start()
            servers.append(silent)
            resolvers.append(Resolver(name="never answers", address=silent.address, port=silent.port))

        check = Propagation(
            NAME,
            "A",
            parse_values("A", ANSWER),
            resolvers=resolvers,
            require=Requirement(authoritative="none", resolvers=1.0),
            query_timeout=args.timeout,
        )
        import dns.name
        import dns.rdatatype

        qname, rdtype = dns.name.from_text(NAME), dns.rdatatype.A

        def one_after_another() -> list[str]:
            return [asyncio.run(ask(r, qname, rdtype, args.timeout)).rcode for r in resolvers]

        check.check()  # warm: imports, first sockets
        concurrent_s, sequential_s = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            summary = check.check()
            concurrent_s.append(time.perf_counter() - started)
            assert summary.new == args.answering, summary
            started = time.perf_counter()
            rcodes = one_after_another()
            sequential_s.append(time.perf_counter() - started)
            assert rcodes.count("NOERROR") == args.answering and rcodes.count("TIMEOUT") == SILENT, rcodes
    finally:
        stop_all(servers)

    check_s, one_by_one_s = statistics.median(concurrent_s), statistics.median(sequential_s)
    bound = 2 + sum(delays) / args.timeout
    figures = {
        "resolvers": args.answering + SILENT,
        "never_answer": SILENT,
        "timeout_s": args.timeout,
        "answering_latency_ms": [round(d * 1000) for d in delays],
        "check_s": round(check_s, 3),
        "check_vs_timeout": round(check_s / args.timeout, 3),
        "sequential_s": round(one_by_one_s, 3),
        "sequential_vs_check": round(one_by_one_s / check_s, 2),
        "sequential_vs_check_bound": round(bound, 2),
    }
    if args.json:
        print(json.dumps({"propagation": figures}))
        return
    rows = [
        ("per-query timeout (s)", figures["timeout_s"], "baseline"),
        (f"one check of {figures['resolvers']} resolvers, {SILENT} silent (s)", figures["check_s"], ""),
        ("check / timeout", figures["check_vs_timeout"], "<= 1.1x"),
        ("the same queries one after another (s)", figures["sequential_s"], ""),
        ("one after another / check", figures["sequential_vs_check"], ">= 8x"),
        ("  bound from the latencies alone", figures["sequential_vs_check_bound"], ""),
    ]
    print(f"answering resolvers' latency: {low * 1000:.0f}-{high * 1000:.0f} ms; {args.rounds} rounds, medians")
    print_table(rows)


if __name__ == "__main__":
    main()
