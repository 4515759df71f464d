"""The incremental sync of 1% changed rows of 1,000,000 `cases`, against the full path of the
same table in the same run (target: at least 20x faster).

- full path: `postgres.export`, `transform` and `convex.import` of public.cases into a fresh
  Convex stand-in, as `cockpit run --headless` runs them (the steps' own times, from their
  events);
- first sync: `cockpit sync cases` into another stand-in holding v1's users, every row (what
  sets the watermark; reported, not compared);
- sync: after 1% of the cases changed on v1 (`updated_at` moved, a field changed), `cockpit
  sync cases` again: the changed rows upserted, references resolved, and v1's keys walked
  against v2's legacy ids for deletions. The table's own time, as the full path's is its steps'
  own; the process's wall time (its start and connections included) is reported beside it.

    python bench/sync.py [--rows 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data_path import mapping_of, run_cockpit, step  # noqa: E402
from cockpit.sandbox.convex.server import ConvexStandIn  # noqa: E402
from cockpit.sandbox.postgres import PostgresServer  # noqa: E402
from cockpit.sandbox.seed import SeedSize, seed  # noqa: E402

CHANGED = 0.01
CONFIG = """mapping = "mapping.toml"

[environments.bench]
postgres = { dsn = "${BENCH_DSN}" }
convex = { url = "${CONVEX_URL}", deploy_key = "${CONVEX_DEPLOY_KEY}" }
"""


def cockpit_sync(folder: Path, env: dict[str, str], *tables: str) -> tuple[float, dict[str, dict[str, Any]]]:
    """`cockpit sync TABLES --format json`: its wall time and each table's counts."""
    cockpit = Path(sys.executable).parent / "cockpit"
    started = time.perf_counter()
    done = subprocess.run(
        [str(cockpit), "sync", *tables, "--format", "json"],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cockpit sync failed: {done.stderr[-2000:]}")
    return seconds, {t["table"]: t for t in json.loads(done.stdout)["tables"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="cases rows (users are a tenth)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = args.rows
    changed = max(1, int(rows * CHANGED))
    work = Path(tempfile.mkdtemp(prefix="cockpit-bench-sync-"))
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    server = PostgresServer().start()
    full_standin = ConvexStandIn(work / "full-convex").start()
    target = ConvexStandIn(work / "sync-convex").start()
    try:
        dsn = server.create_database("bench_sync")
        say(f"seeding {rows:,} cases, {rows // 10:,} users ...")
        seed(dsn, SeedSize(users=max(10, rows // 10), cases=rows, notifications=10))
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            # The seed spreads updated_at over years ahead; a live v1's lie in its past, as
            # a trigger or the application sets them (the sync compares a table with future
            # stamps whole, so the bench gives them past ones).
            conn.execute(
                "UPDATE public.cases SET updated_at = now() - interval '1 day'"
                " - (abs(hashtext(id::text)) % 10000000) * interval '1 second'"
            )
            conn.execute("VACUUM ANALYZE")

        say("full path: export, transform and import of public.cases ...")
        full = work / "full"
        full.mkdir()
        (full / "mapping.toml").write_text(mapping_of(["public.cases"], references=False))
        body = (
            step("export", "postgres.export", 'connection = "v1"\nout = "export"\ntables = ["public.cases"]\njobs = 2')
            + step("transform", "transform", 'mapping = "mapping.toml"\ninput = "export"\nout = "out"', ["export"])
            + step("import", "convex.import", 'connection = "v2"\ninput = "out"', ["transform"])
        )
        env = {"BENCH_DSN": dsn, "CONVEX_URL": full_standin.url, "CONVEX_DEPLOY_KEY": full_standin.deploy_key}
        spans, _ = run_cockpit(full, body, env)
        full_s = spans["import"][1] - spans["export"][0]
        shutil.rmtree(full)

        project = work / "project"
        project.mkdir()
        (project / "migrate.toml").write_text(CONFIG)
        (project / "mapping.toml").write_text(mapping_of(["auth.users", "public.cases"], references=True))
        env = {"BENCH_DSN": dsn, "CONVEX_URL": target.url, "CONVEX_DEPLOY_KEY": target.deploy_key}
        say("first sync: users, then every case ...")
        cockpit_sync(project, env, "users")
        first_s, _ = cockpit_sync(project, env, "cases")

        say(f"changing {changed:,} cases on v1 ...")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE public.cases SET notes = 'changed after the bulk load', updated_at = now()"
                " WHERE id IN (SELECT id FROM public.cases ORDER BY md5(id::text) LIMIT %s)",
                (changed,),
            )
        say("sync of the changes ...")
        sync_s, tables = cockpit_sync(project, env, "cases")
        cases = tables["cases"]
        # The table's own work, as the full path's figure is its steps' own: neither counts the
        # process starting (imports, reading its files) or connecting.
        sync_work_s = float(cases["changes_s"]) + float(cases["deletions_s"])
        if (cases["read"], cases["updated"]) != (changed, changed):
            raise SystemExit(f"the sync read {cases['read']} and updated {cases['updated']}, not {changed}")
        figures = {
            "rows": rows,
            "changed_rows": changed,
            "full_path_s": round(full_s, 2),
            "first_sync_s": round(first_s, 2),
            "sync_s": round(sync_work_s, 2),
            "sync_changes_s": cases["changes_s"],
            "sync_deletions_s": cases["deletions_s"],
            "sync_process_s": round(sync_s, 2),
            "full_path_vs_sync": round(full_s / sync_work_s, 1),
            "full_path_vs_sync_process": round(full_s / sync_s, 1),
        }
    finally:
        target.stop()
        full_standin.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"sync": figures}))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
