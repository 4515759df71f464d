"""The data path end to end: backup, audit, export, transform, import, resolve and verify, against
a real PostgreSQL (seeded PERM Tracker) and the Convex stand-in."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import psycopg
import pytest
from datapath import CALC_CHECKS, CONNECTIONS, MAPPING, PERM_TABLES, env_for
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.events import StepProgress
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

TABLES = json.dumps(PERM_TABLES)

DATA_PATH = (
    f"""
[[step]]
id = "backup"
phase = "window"
kind = "postgres.backup"
with = {{ connection = "v1", out = "backup" }}

[[step]]
id = "export"
phase = "window"
kind = "postgres.export"
with = {{ connection = "v1", out = "export", tables = {TABLES} }}

[[step]]
id = "transform"
phase = "window"
kind = "transform"
needs = ["export"]
with = {{ mapping = "mapping.toml", input = "export", out = "transformed", max_rejects = 10 }}

[[step]]
id = "import"
phase = "window"
kind = "convex.import"
needs = ["transform"]
with = {{ connection = "v2", input = "transformed" }}

[[step]]
id = "resolve"
phase = "window"
kind = "convex.resolve_refs"
needs = ["import"]
with = {{ connection = "v2", mapping = "mapping.toml", transformed = "transformed" }}

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

[[step]]
id = "sample"
phase = "window"
kind = "verify.sample"
needs = ["resolve"]
with = {{ source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed", fraction = 0.5 }}

[[step]]
id = "calc"
phase = "window"
kind = "verify.calc"
needs = ["resolve"]
[step.with]
source = "v1"
target = "v2"
"""
    + CALC_CHECKS
)


def run_data_path(folder: Path, dsn: str, standin: ConvexStandIn, body: str = DATA_PATH) -> Harness:
    (folder / "mapping.toml").write_text(MAPPING)
    return Harness(folder, body, header=HEADER + CONNECTIONS, env=env_for(dsn, standin)).start()


def failures(h: Harness) -> dict[str, str | None]:
    """Each step of DATA_PATH that did not succeed, with its reason."""
    return {
        s: h.engine.step_runtime(s).reason
        for s in ("backup", "export", "transform", "import", "resolve", "counts", "refs", "sample", "calc")
        if h.state(s) != "succeeded"
    }


def source_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in (
                "auth.users",
                "public.cases",
                "public.user_settings",
                "public.user_preferences",
                "public.notifications",
            )
        }


def test_empty_tables_pass_through_every_step(tmp_path: Path, perm_dsn: str, standin: ConvexStandIn) -> None:
    """A deployment that never used a feature has its tables empty: each step must take that."""
    with psycopg.connect(perm_dsn) as conn:
        conn.execute("DELETE FROM public.notifications")
        conn.execute("DELETE FROM public.user_preferences")
    h = run_data_path(tmp_path, perm_dsn, standin)
    try:
        outcome = h.settle(120)
        assert outcome == Outcome.DONE, failures(h)
        assert standin.store.count("notifications") == standin.store.count("userPreferences") == 0
        assert standin.store.count("cases") > 0
        assert (tmp_path / "transformed" / "notifications.jsonl").read_bytes() == b""
    finally:
        h.close()


def test_the_whole_data_path_moves_every_row_and_proves_it(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    h = run_data_path(tmp_path, perm_dsn, standin)
    try:
        outcome = h.settle(120)
        assert outcome == Outcome.DONE, failures(h)
        counts = standin.store.count
        source = source_counts(perm_dsn)
        manifest = json.loads((tmp_path / "transformed" / "manifest.json").read_text())
        rejected = {t: e["rejects"] for t, e in manifest["tables"].items()}
        assert counts("users") == source["auth.users"] - rejected["users"]
        assert counts("cases") == source["public.cases"] - rejected["cases"]
        assert counts("notifications") == source["public.notifications"] - rejected["notifications"]
        metrics = h.engine.view().metrics
        assert metrics["rows_missing"] == 0 and metrics["refs_unresolved"] == 0
        # Each step names its bars the same way throughout: per table, file or reference.
        labels: dict[str, set[str]] = {}
        for event in h.of_type(StepProgress):
            labels.setdefault(event.step_id, set()).add(event.label)
        assert labels["backup"] <= {"roles.sql", "schema.sql", "data.sql"}
        assert all(len(names) <= 2 * 5 for names in labels.values()), labels  # import: upload and import
        assert metrics["sample.rows_differ"] == 0 and metrics["calc.mismatches"] == 0
        # The backup: three files and a manifest, private.
        backup = tmp_path / "backup"
        assert stat.S_IMODE(backup.stat().st_mode) == 0o700
        listing = json.loads((backup / "manifest.json").read_text())
        for name in ("roles.sql", "schema.sql", "data.sql"):
            assert stat.S_IMODE((backup / name).stat().st_mode) == 0o600
            assert listing["files"][name]["bytes"] == (backup / name).stat().st_size
        data = (backup / "data.sql").read_text()
        assert 'COPY "public"."cases"' in data and 'COPY "auth"."users"' in data
        assert (
            '-- CREATE ROLE "anon"' in (backup / "roles.sql").read_text()
            or "-- CREATE ROLE anon" in (backup / "roles.sql").read_text()
        )
    finally:
        h.close()
