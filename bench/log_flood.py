"""The log flood: a step printing 50,000 lines a second for 10 s, with and without the screen.

Each variant runs in its own process (so its peak memory is its own): `headless` is the
baseline (the engine and the journal, no screen); `screen` adds the Textual app, rendering
to a virtual terminal at 80x24, following the flooding step. Reported: lines shown per
second, the worst stall of the screen's event loop, peak memory against the baseline, and
lines missing from the journal (target 0).

    python bench/log_flood.py [--rate 50000] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRODUCER = r"""
import sys, time
rate, seconds, batch = {rate}, {seconds}, 500
out = sys.stdout
n, start = 0, time.perf_counter()
while n < rate * seconds:
    delay = start + n / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    out.write("".join(f"flood line {{n + i}} " + "x" * 40 + "\n" for i in range(batch)))
    n += batch
out.flush()
"""

RUNBOOK = """[runbook]
name = "Log flood"
t0 = 2026-12-05T23:00:00+00:00
window = "30m"

[[phase]]
id = "window"
at = "T-0"
window = true

[[step]]
id = "flood"
phase = "window"
kind = "shell"
with = {{ argv = ["{python}", "producer.py"] }}
"""


def _prepare(folder: Path, rate: int, seconds: float) -> Path:
    (folder / "producer.py").write_text(PRODUCER.format(rate=rate, seconds=seconds))
    path = folder / "runbook.toml"
    path.write_text(RUNBOOK.format(python=sys.executable))
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, rate: int, seconds: float) -> dict[str, float]:
    from cockpit.options import RunOptions
    from cockpit.session import open_session

    folder = Path(tempfile.mkdtemp(prefix="cockpit-flood-"))
    path = _prepare(folder, rate, seconds)
    session = open_session(RunOptions(runbook=path, rehearsal=True, speed=1, start_from="T-0", new_run=True))
    expected = int(rate * seconds)
    started = time.perf_counter()
    result: dict[str, float] = {}
    if variant == "headless":
        session.engine.start()
        session.engine.wait_until_settled()
        elapsed = time.perf_counter() - started
    else:
        from cockpit.app import make_app

        app = make_app(session)
        lags: list[float] = []

        async def drive() -> float:
            async with app.run_test(size=(80, 24)) as pilot:
                last = time.perf_counter()

                def tick() -> None:
                    nonlocal last
                    now = time.perf_counter()
                    lags.append(now - last - 0.05)
                    last = now

                app.set_interval(0.05, tick)
                while session.engine.step_runtime("flood").state.value != "succeeded":
                    await pilot.pause(0.1)
                    if time.perf_counter() - started > seconds * 10 + 60:
                        raise RuntimeError("the flood never finished")
                await pilot.pause(0.5)  # the last batch reaches the screen
                return time.perf_counter() - started

        elapsed = asyncio.run(drive())
        result["lines_shown"] = app.lines_shown
        result["lines_shown_per_s"] = round(app.lines_shown / elapsed)
        result["worst_stall_ms"] = round(max(lags) * 1000, 1) if lags else 0.0
    journaled = session.journal.log_count(session.engine.run_id, "flood")
    session.close()
    shutil.rmtree(folder, ignore_errors=True)
    result.update(
        {
            "elapsed_s": round(elapsed, 2),
            "lines_produced": expected,
            "journal_lines_per_s": round(journaled / elapsed),
            "lines_missing_from_journal": expected - journaled,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }
    )
    return result


def measure(rate: int, seconds: float) -> dict[str, float]:
    results = {}
    for variant in ("headless", "screen"):
        out = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--rate", str(rate), "--seconds", str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds * 20 + 120,
            cwd=ROOT,
            env={**os.environ, "TERM": "xterm-256color"},
        )
        if out.returncode != 0:
            raise RuntimeError(f"{variant} variant failed: {out.stderr[-2000:]}")
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    screen, headless = results["screen"], results["headless"]
    return {
        "rate_lines_per_s": rate,
        "seconds": seconds,
        "screen_lines_shown_per_s": screen["lines_shown_per_s"],
        "screen_worst_stall_ms": screen["worst_stall_ms"],
        "screen_peak_rss_mb": screen["peak_rss_mb"],
        "headless_peak_rss_mb": headless["peak_rss_mb"],
        "memory_ratio_screen_vs_headless": round(screen["peak_rss_mb"] / headless["peak_rss_mb"], 2),
        "screen_journal_lines_per_s": screen["journal_lines_per_s"],
        "headless_journal_lines_per_s": headless["journal_lines_per_s"],
        "lines_missing_from_journal": screen["lines_missing_from_journal"] + headless["lines_missing_from_journal"],
        "target_missing": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--variant", choices=["headless", "screen"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.rate, args.seconds)))
        return
    result = measure(args.rate, args.seconds)
    if args.json:
        print(json.dumps({"log_flood": result}))
        return
    print(f"log flood: {result['rate_lines_per_s']:,} lines/s for {result['seconds']:g} s")
    print(f"  lines shown on screen       {result['screen_lines_shown_per_s']:,}/s")
    print(f"  worst screen stall          {result['screen_worst_stall_ms']} ms")
    print(
        f"  peak memory, screen         {result['screen_peak_rss_mb']} MB "
        f"({result['memory_ratio_screen_vs_headless']}x the headless baseline, "
        f"{result['headless_peak_rss_mb']} MB)"
    )
    print(
        f"  journal, lines/s            {result['screen_journal_lines_per_s']:,} with the screen, "
        f"{result['headless_journal_lines_per_s']:,} headless"
    )
    print(f"  lines missing from journal  {result['lines_missing_from_journal']} (target 0)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
