"""`make bench`: every benchmark in bench/, each against its baseline in the same run, as one table.

    python bench/run_all.py [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.table import print_table  # noqa: E402

BENCHES = ["first_paint.py", "log_flood.py", "data_path.py", "dns.py"]

# (bench, figure, what it is, target) for the table; every figure is also in the JSON.
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
    ("data_path", "peak_memory_large_vs_small", "data path, peak memory 1M / 100k rows", "<= 1.2x"),
    ("data_path", "import_docs_per_s", "data path, convex.import docs/s (stand-in)", ""),
    ("data_path", "import_vs_ceiling", "data path, import / stand-in's own import", ""),
    ("data_path", "verify_together_vs_export", "data path, verification (at once, as the runbook) / export",
     "<= 1x"),
    ("data_path", "verify_vs_export", "data path, verification one after another / export", ""),
    ("data_path", "verify_without_standin_vs_export", "data path, the same less the stand-in / export", ""),
    ("dns", "timeout_s", "dns, per-query timeout (s)", "baseline"),
    ("dns", "check_s", "dns, one check of 16 resolvers, 2 silent (s)", ""),
    ("dns", "check_vs_timeout", "dns, check / timeout", "<= 1.1x"),
    ("dns", "sequential_vs_check", "dns, one after another / check", ">= 8x"),
    ("dns", "sequential_vs_check_bound", "dns, bound of that from the latencies", ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    for bench in BENCHES:
        print(f"running {bench} ...", file=sys.stderr)
        out = subprocess.run([sys.executable, str(HERE / bench), "--json"], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            sys.exit(f"{bench} failed")
        figures.update(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(figures))
        return
    print_table([(label, figures.get(bench, {}).get(key, "n/a"), target) for bench, key, label, target in ROWS])


if __name__ == "__main__":
    main()
