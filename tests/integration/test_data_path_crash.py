"""kill -9 the cockpit during export, transform, import and id resolution, then resume: v2 ends
with exactly the source's rows, no document twice, every reference resolved. And the same with
the Convex stand-in failing 10% of requests (errors, 429s, connections dropped after the work).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import COCKPIT, subprocess_env
from throttle import ThrottledProxy

from cockpit.events import StepStateChanged
from cockpit.journal import Journal
from cockpit.sandbox.convex.faults import Faults
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.seed import SeedSize, seed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TABLES = '["auth.users", "public.cases", "public.user_settings", "public.user_preferences", "public.notifications"]'

RUNBOOK = f"""[runbook]
name = "Crash test"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[connections.v1]
kind = "postgres"
dsn = "${{V1_DSN}}"

[connections.v1_slow]
kind = "postgres"
dsn = "${{V1_SLOW_DSN}}"

[connections.v2]
kind = "convex"
url = "${{V2_URL}}"
deploy_key = "${{V2_KEY}}"

[[phase]]
id = "window"
at = "T-0"
window = true

[[step]]
id = "export"
phase = "window"
kind = "postgres.export"
with = {{ connection = "v1_slow", out = "export", tables = {TABLES} }}

[[step]]
id = "transform"
phase = "window"
kind = "transform"
needs = ["export"]
with = {{ mapping = "mapping.toml", input = "export", out = "transformed", workers = 2 }}

[[step]]
id = "import"
phase = "window"
kind = "convex.import"
needs = ["transform"]
with = {{ connection = "v2", input = "transformed", part_size = 262144 }}

[[step]]
id = "resolve"
phase = "window"
kind = "convex.resolve_refs"
needs = ["import"]
with = {{ connection = "v2", mapping = "mapping.toml", transformed = "transformed", batch_size = 10 }}

[[step]]
id = "counts"
phase = "window"
kind = "verify.counts"
needs = ["resolve"]
with = {{ source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed" }}

[[step]]
id = "refs"
phase = "window"
kind = "verify.refs"
needs = ["resolve"]
with = {{ source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed" }}
"""

STEPS = ["export", "transform", "import", "resolve", "counts", "refs"]
SOURCES = {
    "users": "auth.users",
    "cases": "public.cases",
    "userSettings": "public.user_settings",
    "userPreferences": "public.user_preferences",
    "notifications": "public.notifications",
}


@pytest.fixture(scope="module")
def perm_db(postgres: object) -> str:
    dsn = postgres.create_database(f"crash_{os.getpid()}")  # type: ignore[attr-defined]
    seed(dsn, SeedSize.for_scale(1.0))
    return dsn


@pytest.fixture
def slow_link(postgres: object) -> Iterator[ThrottledProxy]:
    proxy = ThrottledProxy(postgres.port, 3_000_000)  # type: ignore[attr-defined]
    yield proxy
    proxy.close()


def _run_until(
    command: list[str], cwd: Path, env: dict[str, str], step: str, rng: random.Random, delay: tuple[float, float]
) -> bool:
    """Start the cockpit; once `step` runs, wait a random moment and kill -9. True if it was killed."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("type") == "step_state" and event["step_id"] == step and event["state"] == "running":
                time.sleep(rng.uniform(*delay))
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "ten-percent-faults"])
def test_kill_minus_nine_anywhere_in_the_data_path_never_loses_or_duplicates(
    tmp_path: Path, perm_db: str, postgres: object, slow_link: ThrottledProxy, faulty: bool
) -> None:
    faults = Faults(latency=0.003)
    if faulty:
        faults = Faults(latency=0.003, error_rate=0.04, rate_limit_rate=0.03, retry_after=0.05, drop_rate=0.03)
    standin = ConvexStandIn(tmp_path / "convex", faults=faults).start()
    try:
        (tmp_path / "runbook.toml").write_text(RUNBOOK)
        (tmp_path / "mapping.toml").write_text((ROOT / "migration" / "perm-mapping.toml").read_text())
        slow_dsn = perm_db.replace(f":{postgres.port}/", f":{slow_link.port}/")  # type: ignore[attr-defined]
        env = subprocess_env(V1_DSN=perm_db, V1_SLOW_DSN=slow_dsn, V2_URL=standin.url, V2_KEY=standin.deploy_key)
        answers = [a for s in STEPS for a in ("--answer", f"{s}=retry")]
        command = [COCKPIT, "run", "runbook.toml", "--headless", "--json", "--rehearsal", *answers]
        rng = random.Random(20261205 + faulty)
        # Each of the long steps is killed at least once, at a random moment after it starts.
        plan = [
            ("export", (0.3, 2.0)),
            ("transform", (0.05, 0.5)),
            ("import", (0.02, 0.6)),
            ("import", (0.1, 1.0)),
            ("resolve", (0.1, 0.8)),
            ("resolve", (0.2, 1.0)),
        ]
        kills = sum(_run_until(command, tmp_path, env, step, rng, delay) for step, delay in plan)
        assert kills >= 5
        killed = Journal(tmp_path / ".cockpit" / "journal.db", readonly=True)
        unfinished = killed.latest_run()
        killed.close()
        # Else the last command would start a new run, and nothing here would be resumed.
        assert unfinished is not None and unfinished.state != "done", "the run ended before the last kill"
        final = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

        journal = Journal(tmp_path / ".cockpit" / "journal.db", readonly=True)
        run = journal.latest_run()
        assert run is not None and run.state == "done"
        states = [e for e in journal.events(run.id) if isinstance(e, StepStateChanged)]
        interrupted = Counter(e.step_id for e in states if e.state == "interrupted")
        for step in ("export", "import", "resolve"):
            assert interrupted[step] >= 1, (step, interrupted)
        for step in STEPS:
            assert [e.state for e in states if e.step_id == step].count("succeeded") == 1

        with psycopg.connect(perm_db) as conn:
            for target, source in SOURCES.items():
                expected = conn.execute(f"SELECT count(*) FROM {source}").fetchone()[0]  # type: ignore[index]
                legacy = Counter(d["legacyId"] for d in standin.store.documents(target))
                assert sum(legacy.values()) == expected, target
                assert max(legacy.values()) == 1, f"{target}: a document was imported twice"
        cases = list(standin.store.documents("cases"))
        assert all("userId" in c and standin.store.get(c["userId"]) is not None for c in cases)
        # Each table was imported by exactly one import that completed.
        completed = Counter(i.table for i in standin.imports.jobs.values() if i.state.get("state") == "completed")
        assert set(completed.values()) == {1}, completed
        if faulty:
            assert sum(standin.faults.injected.values()) >= 20, standin.faults.injected
            assert standin.faults.injected.get("dropped", 0) >= 3, standin.faults.injected
    finally:
        standin.stop()
