"""`make bench`: every benchmark in bench/, each against its baseline in the same run, as one table.

    python bench/run_all.py [--smoke] [--json]

Each benchmark runs in its own process. One that fails (a non-zero exit, no figures, a figure
missing, longer than its time limit) is reported in the table with its reason, and the others
still run; the exit status is 1 when any failed. `--smoke` runs the quick form of each (small
row counts, short floods, few resolvers) to show that every benchmark runs and prints every
figure, whatever their values: CI runs it after the tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.table import print_table  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    """A script in bench/ that prints `{name: {figure: value}}` as its last line with `--json`."""

    name: str
    smoke_args: tuple[str, ...]
    time_limit_s: float
    folder: Path = HERE

    @property
    def script(self) -> Path:
        return self.folder / f"{self.name}.py"


BENCHMARKS = [
    Benchmark("first_paint", ("--runs", "1"), 600),
    Benchmark("log_flood", ("--rate", "5000", "--seconds", "2"), 900),
    Benchmark("data_path", ("--rows", "10000"), 5400),
    Benchmark("propagation", ("--answering", "3", "--rounds", "1"), 600),
    Benchmark("email_send", ("--messages", "100"), 600),
    Benchmark("calendar_cleanup", ("--users", "10", "--events", "10", "--sample", "3"), 1800),
    Benchmark("sync", ("--rows", "10000"), 3600),
]

# (benchmark, figure, what it is, target) for the table; every figure is also in the JSON.
ROWS = [
    ("first_paint", "bare_textual_s", "first paint, bare Textual app (s)", "baseline"),
    ("first_paint", "cockpit_s", "first paint, cockpit (s)", ""),
    ("first_paint", "ratio", "first paint, cockpit / bare", "<= 1.5x"),
    ("first_paint", "cockpit_filled_s", "runbook validated and on screen (s)", ""),
    ("log_flood", "rate_lines_per_s", "log flood, lines/s printed by the step", ""),
    ("log_flood", "screen_lines_shown_per_s", "log flood, lines/s shown on screen", ""),
    ("log_flood", "screen_worst_stall_ms", "log flood, worst screen stall (ms)", ""),
    ("log_flood", "headless_peak_rss_mb", "log flood, peak memory headless (MB)", "baseline"),
    ("log_flood", "screen_peak_rss_mb", "log flood, peak memory with screen (MB)", ""),
    ("log_flood", "memory_ratio_screen_vs_headless", "log flood, memory screen / headless", ""),
    ("log_flood", "lines_missing_from_journal", "log flood, lines missing from the journal", "0"),
    ("data_path", "psql_copy_rows_per_s", "data path, psql \\copy row_to_json, rows/s", "baseline"),
    ("data_path", "export_rows_per_s", "data path, postgres.export, rows/s", ""),
    ("data_path", "export_vs_psql", "data path, export / psql", ">= 0.9x"),
    ("data_path", "export_transform_vs_psql", "data path, export + transform / psql", ">= 0.5x"),
    ("data_path", "peak_memory_large_vs_small", "data path, peak memory, all rows / a tenth", "<= 1.2x"),
    ("data_path", "import_docs_per_s", "data path, convex.import docs/s (stand-in)", ""),
    ("data_path", "import_vs_ceiling", "data path, import / stand-in's own import", ""),
    ("data_path", "resolve_docs_per_s", "data path, convex.resolve_refs cases/s (stand-in)", ""),
    ("data_path", "resolve_network_two_vs_one", "data path, resolution at 20 ms a call, two shares / one", ""),
    ("data_path", "verify_together_vs_export", "data path, verification (at once, as the runbook) / export", "<= 1x"),
    ("data_path", "verify_vs_export", "data path, verification one after another / export", ""),
    ("data_path", "verify_without_standin_vs_export", "data path, the same less the stand-in / export", ""),
    ("propagation", "timeout_s", "dns, per-query timeout (s)", "baseline"),
    ("propagation", "check_s", "dns, one check of every resolver, 2 silent (s)", ""),
    ("propagation", "check_vs_timeout", "dns, check / timeout", "<= 1.1x"),
    ("propagation", "sequential_vs_check", "dns, one after another / check", ">= 8x"),
    ("propagation", "sequential_vs_check_bound", "dns, bound of that from the latencies", ""),
    ("email_send", "smtplib_messages_per_s", "email, smtplib in a plain loop, messages/s", "baseline"),
    ("email_send", "step_messages_per_s", "email, email.send, messages/s", ""),
    ("email_send", "step_vs_smtplib", "email, email.send / smtplib", ">= 0.5x"),
    ("calendar_cleanup", "events", "calendar, events of v1 to delete", ""),
    ("calendar_cleanup", "one_by_one_http_requests", "calendar, one call per event: HTTP requests", "baseline"),
    ("calendar_cleanup", "step_http_requests", "calendar, calendar.cleanup: HTTP requests", ""),
    ("calendar_cleanup", "requests_vs_one_per_event", "calendar, requests / events", "<= 0.25x"),
    ("calendar_cleanup", "one_by_one_s", "calendar, one call per event (s, sampled)", "baseline"),
    ("calendar_cleanup", "step_s", "calendar, calendar.cleanup (s)", ""),
    ("calendar_cleanup", "step_vs_one_by_one_time", "calendar, cleanup / one by one, time", "<= 0.5x"),
    ("sync", "full_path_s", "sync, full export + transform + import of cases (s)", "baseline"),
    ("sync", "first_sync_s", "sync, first sync of every case (s)", ""),
    ("sync", "sync_s", "sync, 1% of the cases changed (s)", ""),
    ("sync", "sync_process_s", "sync, the same with the process's start (s)", ""),
    ("sync", "full_path_vs_sync", "sync, full path / sync of 1%", ">= 20x"),
    ("sync", "full_path_vs_sync_process", "sync, full path / the sync process", ""),
]


@dataclass
class Outcome:
    """What one benchmark gave: its figures, or why it gave none (or not all)."""

    figures: dict[str, Any]
    failure: str = ""


def run_benchmark(bench: Benchmark, extra_args: tuple[str, ...], expected: list[str]) -> Outcome:
    argv = [sys.executable, str(bench.script), "--json", *extra_args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=bench.time_limit_s)
    except subprocess.TimeoutExpired:
        return Outcome({}, f"no result within {bench.time_limit_s:g} s")
    if out.returncode != 0:
        return Outcome({}, f"exit {out.returncode}: {_last_line(out.stderr) or _last_line(out.stdout)}")
    try:
        figures = json.loads(out.stdout.strip().splitlines()[-1])[bench.name]
    except (IndexError, ValueError, KeyError, TypeError):
        return Outcome({}, f"printed no figures under {bench.name!r}: {_last_line(out.stdout)!r}")
    missing = [key for key in expected if key not in figures]
    return Outcome(figures, f"figures missing: {', '.join(missing)}" if missing else "")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_all(
    benchmarks: list[Benchmark], rows: list[tuple[str, str, str, str]], *, smoke: bool, say: Any = None
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for bench in benchmarks:
        if say is not None:
            say(f"running {bench.name}{' (smoke)' if smoke else ''} ...")
        expected = [key for name, key, _, _ in rows if name == bench.name]
        outcomes[bench.name] = run_benchmark(bench, bench.smoke_args if smoke else (), expected)
        if say is not None and outcomes[bench.name].failure:
            say(f"  {bench.name} failed: {outcomes[bench.name].failure}")
    return outcomes


def table_rows(outcomes: dict[str, Outcome], rows: list[tuple[str, str, str, str]]) -> list[tuple[str, Any, str]]:
    table = []
    for name, key, label, target in rows:
        outcome = outcomes.get(name)
        if outcome is None:
            value: Any = "not run"
        elif key in outcome.figures:
            value = outcome.figures[key]
        else:
            value = "failed"
        table.append((label, value, target))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the quick form of each benchmark (CI)")
    parser.add_argument("--json", action="store_true", help="print every figure, and every failure, as one object")
    args = parser.parse_args()
    outcomes = run_all(BENCHMARKS, ROWS, smoke=args.smoke, say=lambda text: print(text, file=sys.stderr))
    failures = {name: outcome.failure for name, outcome in outcomes.items() if outcome.failure}
    if args.json:
        print(json.dumps({**{name: outcome.figures for name, outcome in outcomes.items()}, "failed": failures}))
    else:
        print_table(table_rows(outcomes, ROWS))
        for name, reason in failures.items():
            print(f"{name} failed: {reason}")
        ran = len(outcomes) - len(failures)
        print(
            f"{ran} of {len(outcomes)} benchmarks ran to the end"
            + (" (smoke: their figures, not their values)" if args.smoke else "")
        )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
