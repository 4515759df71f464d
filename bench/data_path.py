"""The data path on 1,000,000 `cases` rows, each figure against its baseline in the same run.

- export: `postgres.export` of public.cases against
  `psql -c "\\copy (SELECT row_to_json(t) FROM public.cases t) TO 'file'"` (target >= 0.9x);
- export and transform together against the same psql baseline (target >= 0.5x);
- peak memory of the cockpit (its whole process tree, sampled) exporting and transforming
  1,000,000 rows against 100,000 rows (target <= 1.2x);
- import rows/s into the Convex stand-in, against the stand-in's own one-shot import of the
  same file (the most that server can take);
- verification (counts, refs, a 10% sample and two calculations) against the export's time in
  the same run (target <= 1x): the four run at once, as runbook.toml runs them (each needs only
  the resolution); and, for comparison, one after another, also without the time spent inside
  the stand-in's functions, which stand for Convex's query engine and are Python here;
- resolution over a network: `convex.resolve_refs` of a tenth as many cases, in a fresh stand-in
  whose every mutation call takes 20 ms longer (a round trip to a Convex deployment), in two
  shares at once (`parallel = 2`, as runbook.toml runs it) against one chain of pages.

Each variant runs as `cockpit run --headless --json` in its own process, as an operator runs
it; times are the steps' own, from their events. psql and the cockpit export run twice,
alternately, and the better of each counts.

    python bench/data_path.py [--rows 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import print_table  # noqa: E402
from cockpit.sandbox.convex.faults import Faults  # noqa: E402
from cockpit.sandbox.convex.server import ConvexStandIn  # noqa: E402
from cockpit.sandbox.postgres import PostgresServer  # noqa: E402
from cockpit.sandbox.seed import SeedSize, seed  # noqa: E402

# As runbook.toml exports: two connections per large table, sharing one snapshot.
EXPORT_JOBS = 2
# Added to every mutation call of the resolution figure: a round trip to a Convex deployment.
ROUND_TRIP_S = 0.02

HEADER = """[runbook]
name = "Data path bench"
t0 = 2026-12-05T23:00:00+00:00
window = "30m"

[connections.v1]
kind = "postgres"
dsn = "${BENCH_DSN}"

[connections.v2]
kind = "convex"
url = "${CONVEX_URL}"
deploy_key = "${CONVEX_DEPLOY_KEY}"

[[phase]]
id = "window"
at = "T-0"
window = true
"""


def step(step_id: str, kind: str, with_: str, needs: list[str] | None = None) -> str:
    return (
        f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "{kind}"\ntimeout = "2h"\n'
        f"needs = {json.dumps(needs or [])}\n[step.with]\n{with_}\n"
    )


def mapping_of(tables: list[str], *, references: bool) -> str:
    """The shipped PERM mapping, cut down to some tables (and without references, if asked)."""
    text = (ROOT / "migration" / "perm-mapping.toml").read_text()
    parts = re.split(r"(?m)^(?=\[table\.)", text)
    keep = [parts[0]] + [p for p in parts[1:] if any(p.startswith(f'[table."{t}"]') for t in tables)]
    out = "".join(keep)
    return out if references else re.sub(r"(?m)^references = .*\n", "", out)


class PeakMemory:
    """The largest total resident memory of a process and its descendants, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, frontier = [self.pid], [self.pid]
        while frontier:
            frontier = [p for p, parent in parents.items() if parent in frontier]
            tree += frontier
        return tree

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            total = 0
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                match = re.search(r"VmRSS:\s+(\d+) kB", status)
                total += int(match.group(1)) if match else 0
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def run_cockpit(
    folder: Path, body: str, env: dict[str, str], on_event: Any = None, memory: bool = False
) -> tuple[dict[str, tuple[float, float]], float]:
    """Run a runbook headless; return each step's (start, end) wall times and, with `memory`,
    the peak memory in MB (else 0). Sampling reads all of /proc every 20 ms: only the memory
    runs pay for it, not the runs whose times are compared with the stand-in's in this process."""
    (folder / "runbook.toml").write_text(HEADER + body)
    cockpit = Path(sys.executable).parent / "cockpit"
    argv = [str(cockpit), "run", "runbook.toml", "--headless", "--json", "--rehearsal", "--speed", "1"]
    process = subprocess.Popen(
        argv, cwd=folder, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = PeakMemory(process.pid) if memory else None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    events = []
    for line in process.stdout:  # type: ignore[union-attr]
        if line.startswith("{"):
            events.append(json.loads(line))
            if on_event is not None:
                on_event(events[-1])
    process.wait()
    reader.join()
    err = "".join(errors)
    peak = sampler.stop() if sampler is not None else 0.0
    spans: dict[str, list[float]] = {}
    for event in events:
        if event.get("type") == "step_state":
            span = spans.setdefault(event["step_id"], [0.0, 0.0])
            if event["state"] == "running":
                span[0] = event["wall"]
            elif event["state"] == "succeeded":
                span[1] = event["wall"]
            elif event["state"] in ("failed", "cancelled"):
                sys.exit(f"bench: step {event['step_id']} {event['state']}: {event.get('reason')}\n{err[-2000:]}")
    if process.returncode != 0:
        sys.exit(f"bench: cockpit exited {process.returncode}\n{err[-2000:]}")
    return {k: (v[0], v[1]) for k, v in spans.items()}, peak


def psql_copy(server: PostgresServer, dsn: str, table: str, target: Path) -> float:
    psql = shutil.which("psql") or str(server.bin_dir / "psql")
    started = time.perf_counter()
    subprocess.run(
        [psql, "-X", "-q", "-d", dsn, "-c", f"\\copy (SELECT row_to_json(t) FROM {table} t) TO '{target}'"], check=True
    )
    return time.perf_counter() - started


def direct_import(standin: ConvexStandIn, path: Path) -> float:
    """The stand-in's ceiling: its one-shot import of the file, fed straight from disk."""
    import httpx

    started = time.perf_counter()
    with path.open("rb") as body:
        response = httpx.post(
            f"{standin.url}/api/import",
            params={"tableName": "ceiling", "format": "jsonLines"},
            content=body,
            headers={"Authorization": f"Convex {standin.deploy_key}"},
            timeout=3600,
        )
    response.raise_for_status()
    return time.perf_counter() - started


def resolve_over_network(folder: Path, env: dict[str, str], cases: int, parallel: int) -> float:
    """convex.resolve_refs of `cases` documents of about 1 KB (and a tenth as many users) in a
    fresh stand-in whose mutation calls each take ROUND_TRIP_S longer: the step's time."""
    folder.mkdir()
    standin = ConvexStandIn(folder / "convex", faults=Faults(latency=ROUND_TRIP_S, paths=("/api/mutation",))).start()
    try:
        users = max(10, cases // 10)
        with standin.store.transaction():
            standin.store.insert_many("users", ({"legacyId": f"u{i}"} for i in range(users)))
            standin.store.insert_many(
                "cases",
                ({"legacyId": f"c{i}", "legacyUserId": f"u{i % users}", "notes": "n" * 900} for i in range(cases)),
            )
        (folder / "mapping.toml").write_text(mapping_of(["auth.users", "public.cases"], references=True))
        spans, _ = run_cockpit(
            folder,
            step(
                "resolve", "convex.resolve_refs", f'connection = "v2"\nmapping = "mapping.toml"\nparallel = {parallel}'
            ),
            {**env, "CONVEX_URL": standin.url, "CONVEX_DEPLOY_KEY": standin.deploy_key},
        )
        if not all(d.get("userId") for d in standin.store.documents("cases")):
            sys.exit("bench: the resolution left a case unresolved")
        return spans["resolve"][1] - spans["resolve"][0]
    finally:
        standin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="cases rows (users are a tenth)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows, small_rows = args.rows, args.rows // 10
    work = Path(tempfile.mkdtemp(prefix="cockpit-bench-data-"))
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    server = PostgresServer().start()
    standin: ConvexStandIn | None = None
    try:
        dsn = server.create_database("bench")
        say(f"seeding {rows:,} cases, {rows // 10:,} users ...")
        seed(dsn, SeedSize(users=max(10, rows // 10), cases=rows, notifications=10))
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA small")
            conn.execute(f"CREATE TABLE small.cases AS SELECT * FROM public.cases LIMIT {small_rows}")
            conn.execute("VACUUM ANALYZE")
        # The local runs do not reach v2: an address nothing listens on.
        env = {"BENCH_DSN": dsn, "CONVEX_URL": "http://127.0.0.1:9", "CONVEX_DEPLOY_KEY": "unused"}

        # Export, and export + transform, of `cases` alone, against psql; then the same at a tenth.
        def local_path(folder: Path, table: str, memory: bool) -> tuple[dict[str, tuple[float, float]], float]:
            folder.mkdir()
            (folder / "mapping.toml").write_text(
                mapping_of(["public.cases"], references=False).replace('"public.cases"', f'"{table}"')
            )
            body = step(
                "export",
                "postgres.export",
                f'connection = "v1"\nout = "export"\ntables = ["{table}"]\njobs = {EXPORT_JOBS}',
            ) + step("transform", "transform", 'mapping = "mapping.toml"\ninput = "export"\nout = "out"', ["export"])
            return run_cockpit(folder, body, env, memory=memory)

        psql_times, ours_times, path_times = [], [], []
        peak_large = 0.0
        for attempt in (1, 2):
            say(f"psql \\copy, run {attempt} ...")
            psql_times.append(psql_copy(server, dsn, "public.cases", work / f"psql-{attempt}.jsonl"))
            (work / f"psql-{attempt}.jsonl").unlink()
            say(f"cockpit export + transform, run {attempt} ...")
            # The first run is timed with nothing else in the bench's process; the second also
            # samples memory (its time counts too, and the better of the two is kept).
            spans, peak = local_path(work / f"large-{attempt}", "public.cases", memory=attempt == 2)
            ours_times.append(spans["export"][1] - spans["export"][0])
            path_times.append(spans["transform"][1] - spans["export"][0])
            peak_large = max(peak_large, peak)
            shutil.rmtree(work / f"large-{attempt}")
        say(f"cockpit export + transform of {small_rows:,} rows ...")
        _, peak_small = local_path(work / "small", "small.cases", memory=True)

        # The whole path at full size: users and cases into the stand-in, resolved, verified.
        standin = ConvexStandIn(work / "convex").start()
        env.update({"CONVEX_URL": standin.url, "CONVEX_DEPLOY_KEY": standin.deploy_key})
        full = work / "full"
        full.mkdir()
        (full / "mapping.toml").write_text(mapping_of(["auth.users", "public.cases"], references=True))
        verify_with = 'source = "v1"\ntarget = "v2"\nmapping = "mapping.toml"\ntransformed = "out"'
        calc = (
            '\n[[step.with.checks]]\nname = "cases per status"\n'
            'sql = "SELECT case_status AS key, count(*) AS count FROM public.cases GROUP BY 1"\n'
            'table = "cases"\ngroup_by = "caseStatus"\n'
            '[[step.with.checks]]\nname = "total wages"\n'
            'sql = "SELECT count(*) AS count, sum(round(pwd_wage_amount * 100)) AS sum FROM public.cases"\n'
            'table = "cases"\nsum = "pwdWageAmount"\n'
        )
        body = (
            step(
                "export",
                "postgres.export",
                f'connection = "v1"\nout = "export"\ntables = ["auth.users", "public.cases"]\njobs = {EXPORT_JOBS}',
            )
            + step("transform", "transform", 'mapping = "mapping.toml"\ninput = "export"\nout = "out"', ["export"])
            + step("import", "convex.import", 'connection = "v2"\ninput = "out"', ["transform"])
            + step(
                "resolve",
                "convex.resolve_refs",
                'connection = "v2"\nmapping = "mapping.toml"\ntransformed = "out"',
                ["import"],
            )
            + step("counts", "verify.counts", verify_with, ["resolve"])
            + step("refs", "verify.refs", verify_with, ["counts"])
            + step("sample", "verify.sample", verify_with + "\nfraction = 0.1", ["refs"])
            + step("calc", "verify.calc", 'source = "v1"\ntarget = "v2"', ["sample"])
            + calc
        )
        say("the whole path at full size: export, transform, import, resolve, verify ...")
        # Function time before the verifications: the resolution's; what follows is theirs.
        resolve_function_s = 0.0

        def note_resolution_end() -> None:
            nonlocal resolve_function_s
            resolve_function_s = standin.function_seconds if standin else 0.0

        spans, _ = run_cockpit(
            full,
            body,
            env,
            on_event=lambda e: (
                note_resolution_end() if e.get("step_id") == "resolve" and e.get("state") == "succeeded" else None
            ),
        )
        verify_function_s = standin.function_seconds - resolve_function_s
        say("  " + ", ".join(f"{k} {v[1] - v[0]:.1f}s" for k, v in spans.items()))
        manifest = json.loads((full / "out" / "manifest.json").read_text())
        documents = sum(t["output_rows"] for t in manifest["tables"].values())
        import_s = spans["import"][1] - spans["import"][0]
        verify_s = max(spans[s][1] for s in ("counts", "refs", "sample", "calc")) - min(
            spans[s][0] for s in ("counts", "refs", "sample", "calc")
        )
        full_export_s = spans["export"][1] - spans["export"][0]
        # The same four verifications as runbook.toml runs them: all at once after the resolution.
        say("the verifications again, at once, as the runbook runs them ...")
        together = work / "together"
        together.mkdir()
        shared = 'source = "v1"\ntarget = "v2"\nmapping = "../full/mapping.toml"\ntransformed = "../full/out"'
        spans_together, _ = run_cockpit(
            together,
            step("counts", "verify.counts", shared)
            + step("refs", "verify.refs", shared)
            + step("sample", "verify.sample", shared + "\nfraction = 0.1")
            + step("calc", "verify.calc", 'source = "v1"\ntarget = "v2"')
            + calc,
            env,
        )
        verify_together_s = max(v[1] for v in spans_together.values()) - min(v[0] for v in spans_together.values())
        say("the stand-in's own import of the same cases file ...")
        ceiling_s = direct_import(standin, full / "out" / "cases.jsonl")
        ceiling_rows = manifest["tables"]["cases"]["output_rows"]
        if standin is not None:
            standin.stop()
            standin = None
        say(f"resolution of {small_rows:,} cases at {ROUND_TRIP_S * 1000:.0f} ms a call: one chain, two shares ...")
        resolve_one_s = resolve_over_network(work / "resolve-1", env, small_rows, 1)
        resolve_two_s = resolve_over_network(work / "resolve-2", env, small_rows, 2)
    finally:
        if standin is not None:
            standin.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    psql_s, export_s, both_s = min(psql_times), min(ours_times), min(path_times)
    resolve_s = spans["resolve"][1] - spans["resolve"][0]
    figures: dict[str, Any] = {
        "rows": rows,
        "psql_copy_rows_per_s": round(rows / psql_s),
        "export_rows_per_s": round(rows / export_s),
        "export_vs_psql": round(psql_s / export_s, 2),
        "export_transform_rows_per_s": round(rows / both_s),
        "export_transform_vs_psql": round(psql_s / both_s, 2),
        "peak_mb_small": round(peak_small, 1),
        "peak_mb_large": round(peak_large, 1),
        "peak_memory_large_vs_small": round(peak_large / peak_small, 2),
        "import_docs_per_s": round(documents / import_s),
        "standin_ceiling_docs_per_s": round(ceiling_rows / ceiling_s),
        "import_vs_ceiling": round((documents / import_s) / (ceiling_rows / ceiling_s), 2),
        "resolve_s": round(resolve_s, 1),
        # Only cases hold references: the resolution goes through them, not the users.
        "resolve_docs_per_s": round(manifest["tables"]["cases"]["output_rows"] / resolve_s),
        "resolve_network_one_chain_s": round(resolve_one_s, 1),
        "resolve_network_two_shares_s": round(resolve_two_s, 1),
        "resolve_network_two_vs_one": round(resolve_two_s / resolve_one_s, 2),
        "verify_s": round(verify_s, 1),
        "export_s_same_run": round(full_export_s, 1),
        "verify_vs_export": round(verify_s / full_export_s, 2),
        "verify_together_s": round(verify_together_s, 1),
        "verify_together_vs_export": round(verify_together_s / full_export_s, 2),
        "verify_standin_function_s": round(verify_function_s, 1),
        "verify_without_standin_vs_export": round((verify_s - verify_function_s) / full_export_s, 2),
    }
    if args.json:
        print(json.dumps({"data_path": figures}))
        return
    rows_table = [
        ("psql \\copy row_to_json, rows/s", figures["psql_copy_rows_per_s"], "baseline"),
        ("postgres.export, rows/s", figures["export_rows_per_s"], ""),
        ("export / psql", figures["export_vs_psql"], ">= 0.9x"),
        ("export + transform, rows/s", figures["export_transform_rows_per_s"], ""),
        ("export + transform / psql", figures["export_transform_vs_psql"], ">= 0.5x"),
        (f"peak memory at {small_rows:,} rows (MB)", figures["peak_mb_small"], "baseline"),
        (f"peak memory at {rows:,} rows (MB)", figures["peak_mb_large"], ""),
        ("peak memory, large / small", figures["peak_memory_large_vs_small"], "<= 1.2x"),
        ("stand-in's own import, docs/s", figures["standin_ceiling_docs_per_s"], "baseline"),
        ("convex.import into the stand-in, docs/s", figures["import_docs_per_s"], ""),
        ("import / stand-in's own", figures["import_vs_ceiling"], ""),
        ("convex.resolve_refs of the cases in the stand-in, docs/s", figures["resolve_docs_per_s"], ""),
        (
            f"resolution at {ROUND_TRIP_S * 1000:.0f} ms a call, one chain (s)",
            figures["resolve_network_one_chain_s"],
            "baseline",
        ),
        ("  in two shares at once (s)", figures["resolve_network_two_shares_s"], ""),
        ("  two shares / one chain", figures["resolve_network_two_vs_one"], ""),
        ("export in the same run (s)", figures["export_s_same_run"], "baseline"),
        ("verification, as runbook.toml runs it: at once (s)", figures["verify_together_s"], ""),
        ("verification (at once) / export", figures["verify_together_vs_export"], "<= 1x"),
        ("verification, four steps one after another (s)", figures["verify_s"], ""),
        ("  of which inside the stand-in's functions (s)", figures["verify_standin_function_s"], ""),
        ("verification one after another / export", figures["verify_vs_export"], ""),
        ("the same without the stand-in's share / export", figures["verify_without_standin_vs_export"], ""),
    ]
    print_table(rows_table)


if __name__ == "__main__":
    main()
