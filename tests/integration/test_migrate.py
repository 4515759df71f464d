"""`cockpit migrate` against a real PostgreSQL and the Convex stand-in: universal migrations
applied, listed, rolled back to a target, refused before anything is written, stopped whole
when one side fails, and applied to PostgreSQL alone when Convex is switched off."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import COCKPIT, subprocess_env

from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

MIGRATIONS: dict[str, dict[str, Any]] = {
    "001_initial_schema": {
        "description": "users, and the settings table on PostgreSQL",
        "schema": {"users": {"name": "string", "email": "string", "role": "string?"}},
        "data": [
            {"type": "insert", "table": "users",
             "data": {"name": "Admin", "email": "admin@x.test", "role": "admin"}},
            {"type": "insert", "table": "users", "data": {"name": "Guest", "email": "guest@x.test"}},
        ],
        "indexes": [{"table": "users", "name": "by_email", "fields": ["email"]}],
        "sql": {
            "up": "CREATE TABLE app_settings (key text PRIMARY KEY, value text)",
            "down": "DROP TABLE app_settings",
        },
    },
    "002_add_tags": {
        "schema": {"tags": {"name": "string", "color": "string?"}},
        "data": [
            {"type": "insert", "table": "tags", "data": {"name": "urgent", "color": "red"}},
            {"type": "update", "table": "users", "where": {"email": "admin@x.test"}, "set": {"role": "owner"},
             "original": {"role": "admin"}},
        ],
        "sql": {
            "up": "ALTER TABLE app_settings ADD COLUMN set_by text;"
            " INSERT INTO app_settings VALUES ('theme', 'dark', 'ops')",
            "down": "DELETE FROM app_settings WHERE key = 'theme'; ALTER TABLE app_settings DROP COLUMN set_by",
        },
    },
    "003_remove_guest": {
        "data": [
            {"type": "delete", "table": "users", "where": {"email": "guest@x.test"},
             "original": {"name": "Guest", "email": "guest@x.test"}},
        ],
    },
}  # fmt: skip

CONFIG = """\
migrations = "migrations"
logs = "migration_logs"
default = "development"

[environments.development]
postgres = { dsn = "${DATABASE_URL}" }
convex = { url = "${CONVEX_URL}", deploy_key = "${CONVEX_DEPLOY_KEY}", enabled = "${USE_CONVEX}" }

[environments.production]
postgres = { dsn = "${PRODUCTION_DATABASE_URL}" }
"""


class Project:
    def __init__(self, folder: Path, dsn: str, convex: ConvexStandIn) -> None:
        self.folder = folder
        self.dsn = dsn
        self.convex = convex
        self.env = {
            "DATABASE_URL": dsn,
            "CONVEX_URL": convex.url,
            "CONVEX_DEPLOY_KEY": convex.deploy_key,
            "USE_CONVEX": "true",
        }
        (folder / "migrations").mkdir()
        (folder / "migrate.toml").write_text(CONFIG)
        for stem, body in MIGRATIONS.items():
            self.write(stem, body)

    def write(self, stem: str, body: dict[str, Any]) -> Path:
        version, name = stem.split("_", 1)
        path = self.folder / "migrations" / f"{stem}.json"
        path.write_text(json.dumps({"version": version, "name": name, **body}, indent=2) + "\n")
        return path

    def migrate(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COCKPIT, "migrate", *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            env=subprocess_env(**{**self.env, **env}),
        )

    def status(self, **env: str) -> dict[str, Any]:
        done = self.migrate("status", "--json", **env)
        assert done.returncode in (0, 1), done.stderr
        document: dict[str, Any] = json.loads(done.stdout)
        return document

    def states(self, **env: str) -> dict[str, str]:
        return {m["version"]: m["state"] for m in self.status(**env)["migrations"]}

    def postgres_versions(self) -> list[str]:
        with psycopg.connect(self.dsn) as conn:
            if conn.execute("SELECT to_regclass('cockpit_migrations')").fetchone() == (None,):
                return []
            return [r[0] for r in conn.execute("SELECT version FROM cockpit_migrations ORDER BY version")]

    def settings(self) -> list[tuple[Any, ...]] | None:
        with psycopg.connect(self.dsn) as conn:
            if conn.execute("SELECT to_regclass('app_settings')").fetchone() == (None,):
                return None
            return [tuple(r) for r in conn.execute("SELECT * FROM app_settings ORDER BY key")]

    def users(self) -> dict[str, str | None]:
        return {d["email"]: d.get("role") for d in self.convex.store.documents("users")}

    def convex_versions(self) -> list[str]:
        return [
            d["version"] for d in sorted(self.convex.store.documents("cockpit_migrations"), key=lambda d: d["version"])
        ]


@pytest.fixture
def project(tmp_path: Path, pg_dsn: str, standin: ConvexStandIn) -> Project:
    return Project(tmp_path, pg_dsn, standin)


def test_apply_status_and_rollback_to_a_target_on_both_sides(project: Project) -> None:
    assert set(project.states().values()) == {"pending"}
    applied = project.migrate("apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applying 001_initial_schema on postgres and convex" in applied.stdout
    assert "002_add_tags: postgres sql applied; convex inserted 1, updated 1, deleted 0" in applied.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001", "002", "003"]
    assert project.settings() == [("theme", "dark", "ops")]
    assert project.users() == {"admin@x.test": "owner"}
    status = project.status()
    assert [m["state"] for m in status["migrations"]] == ["applied"] * 3
    first = status["migrations"][0]
    checksum = first["checksum"]
    assert first["sides"]["postgres"]["checksum"] == first["sides"]["convex"]["checksum"] == checksum
    assert first["sides"]["postgres"]["applied_by"] and first["sides"]["convex"]["applied_at"]
    assert [(s["table"], s["violating"]) for s in status["schema"]] == [("users", 0), ("tags", 0)]
    text = project.migrate("status")
    assert text.returncode == 0
    assert re.search(r"^002  add_tags +applied  \d{4}-\d\d-\d\d \d\d:\d\dZ by \S+  [0-9a-f]{8}$", text.stdout, re.M)
    assert checksum.removeprefix("sha256:")[:8] in text.stdout

    again = project.migrate("apply")
    assert again.returncode == 0 and "nothing to apply" in again.stdout
    back = project.migrate("rollback", "--target", "001")
    assert back.returncode == 0, back.stdout + back.stderr
    assert back.stdout.index("rolling back 003_remove_guest") < back.stdout.index("rolling back 002_add_tags")
    assert project.postgres_versions() == project.convex_versions() == ["001"]
    assert project.settings() == [] and project.users() == {"admin@x.test": "admin", "guest@x.test": None}
    assert project.convex.store.count("tags") == 0
    assert project.states() == {"001": "applied", "002": "pending", "003": "pending"}
    # The default rollback undoes the last one only; 000 undoes them all.
    assert project.migrate("apply").returncode == 0
    assert project.migrate("rollback").returncode == 0 and project.postgres_versions() == ["001", "002"]
    assert project.migrate("rollback", "--target", "000").returncode == 0
    assert project.postgres_versions() == project.convex_versions() == [] and project.settings() is None
    assert project.users() == {}


def test_every_run_is_logged_privately_without_secrets(project: Project) -> None:
    assert project.migrate("apply", "--target", "002").returncode == 0
    logs = sorted((project.folder / "migration_logs").iterdir())
    assert len(logs) == 1 and logs[0].name.endswith("-apply-development.log")
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(logs[0].parent.stat().st_mode) == 0o700
    text = logs[0].read_text()
    assert "applying 002_add_tags" in text and "003_remove_guest" not in text
    assert project.convex.deploy_key not in text


def test_a_failure_on_convex_undoes_the_migration_on_postgres_and_stops(project: Project) -> None:
    broken = json.loads(json.dumps(MIGRATIONS["002_add_tags"]))
    broken["data"][1]["original"] = {"role": "superuser"}  # not what the document holds
    project.write("002_add_tags", broken)
    done = project.migrate("apply", "--json")
    assert done.returncode == 1
    outcome = json.loads(done.stdout)
    assert [d["version"] for d in outcome["done"]] == ["001"]
    assert outcome["failed"]["error"]["side"] == "convex"
    assert 'role is "admin", not "superuser"' in outcome["failed"]["error"]["message"]
    assert "nothing of it was applied; stopped" in done.stderr
    # 002's SQL ran in the transaction that rolled back: no column, no row; 003 never started.
    assert project.postgres_versions() == project.convex_versions() == ["001"]
    assert project.settings() == [] and project.convex.store.count("tags") == 0
    with psycopg.connect(project.dsn) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'app_settings'"
            )
        ]
    assert columns == ["key", "value"]


def test_a_failure_on_postgres_leaves_convex_untouched(project: Project) -> None:
    broken = json.loads(json.dumps(MIGRATIONS["002_add_tags"]))
    broken["sql"]["up"] = "ALTER TABLE app_settings ADD COLUMN set_by text; INSERT INTO no_such_table VALUES (1)"
    project.write("002_add_tags", broken)
    done = project.migrate("apply")
    assert done.returncode == 1
    assert 'failed on postgres: relation "no_such_table" does not exist' in done.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001"]
    assert project.users() == {"admin@x.test": "admin", "guest@x.test": None}


def test_refusals_write_nothing_and_exit_2(project: Project) -> None:
    assert project.migrate("apply", "--target", "002").returncode == 0
    missing = project.migrate("apply", "--target", "009")
    assert missing.returncode == 2 and "no migration 009: the migrations are 001 to 003" in missing.stdout
    bad = project.migrate("apply", "--target", "9")
    assert bad.returncode == 2 and "--target '9': a version is three digits" in bad.stderr
    # A file changed after it was applied: status flags it, apply and rollback refuse.
    changed = json.loads(json.dumps(MIGRATIONS["001_initial_schema"]))
    changed["description"] = "edited later"
    project.write("001_initial_schema", changed)
    assert project.states()["001"] == "changed since applied"
    assert project.migrate("status").returncode == 1
    refused = project.migrate("apply")
    assert (
        refused.returncode == 2
        and "001_initial_schema.json changed since it was applied on postgres, convex" in refused.stdout
    )
    project.write("001_initial_schema", MIGRATIONS["001_initial_schema"])
    # A rollback past a migration whose SQL has no down: refused, naming it; nothing undone.
    no_down = json.loads(json.dumps(MIGRATIONS["002_add_tags"]))
    del no_down["sql"]["down"]
    project.write("002_add_tags", no_down)
    (project.folder / "migrations" / "003_remove_guest.json").unlink()
    assert project.migrate("rollback", "--target", "000").returncode == 2  # 002 changed since applied
    project.write("002_add_tags", MIGRATIONS["002_add_tags"])
    assert project.migrate("apply").returncode == 0
    assert project.postgres_versions() == ["001", "002"]


def test_a_rollback_past_a_migration_without_its_down_is_refused(project: Project) -> None:
    no_down = json.loads(json.dumps(MIGRATIONS["001_initial_schema"]))
    del no_down["sql"]["down"]
    project.write("001_initial_schema", no_down)
    assert project.migrate("apply").returncode == 0
    refused = project.migrate("rollback", "--target", "000")
    assert refused.returncode == 2
    assert "001_initial_schema.json cannot be rolled back: its sql part has no `down`" in refused.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001", "002", "003"]
    assert project.migrate("rollback", "--target", "001").returncode == 0
    assert project.postgres_versions() == ["001"]


def test_bad_files_and_environments_are_named_at_their_line(project: Project) -> None:
    (project.folder / "migrations" / "004_broken.json").write_text('{\n  "version": "004",\n  "name": broken\n}\n')
    done = project.migrate("status")
    assert done.returncode == 2 and "004_broken.json:3: not valid JSON" in done.stderr
    (project.folder / "migrations" / "004_broken.json").unlink()
    unset = project.migrate("status", "--env", "production")
    assert unset.returncode == 2
    assert "migrate.toml:10: postgres.dsn: ${PRODUCTION_DATABASE_URL} is not set in the environment" in unset.stderr
    unknown = project.migrate("status", "--env", "prod")
    assert unknown.returncode == 2
    assert unknown.stderr == "migrate.toml: no environment 'prod' (it has development, production)\n"
    neither = project.migrate("status", USE_CONVEX="maybe")
    assert (
        neither.returncode == 2
        and "migrate.toml:7: convex.enabled: 'maybe' is neither true nor false" in neither.stderr
    )


def test_dry_runs_change_nothing_on_either_side(project: Project) -> None:
    dry = project.migrate("apply", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would apply 003_remove_guest on postgres and convex" in dry.stdout
    # Each migration saw the ones before it on PostgreSQL (002 alters 001's table).
    assert "dry run: would have applied 3 migrations" in dry.stdout
    assert project.postgres_versions() == project.convex_versions() == [] and project.settings() is None
    assert project.convex.store.count("users") == 0
    assert project.migrate("apply").returncode == 0
    back = project.migrate("rollback", "--target", "000", "--dry-run")
    assert back.returncode == 0 and "would roll back 001_initial_schema" in back.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001", "002", "003"]


def test_with_convex_off_postgres_alone_is_migrated_and_convex_catches_up(project: Project) -> None:
    off = project.migrate("apply", USE_CONVEX="false")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "postgres (off: convex (enabled = ${USE_CONVEX}, which is 'false'))" in off.stdout
    assert "applying 001_initial_schema on postgres\n" in off.stdout
    assert project.postgres_versions() == ["001", "002", "003"] and project.convex_versions() == []
    assert project.states(USE_CONVEX="false") == {"001": "applied", "002": "applied", "003": "applied"}
    assert project.states() == {
        "001": "applied on postgres only",
        "002": "applied on postgres only",
        "003": "applied on postgres only",
    }
    on = project.migrate("apply")
    assert on.returncode == 0 and "applying 001_initial_schema on convex\n" in on.stdout
    assert project.convex_versions() == ["001", "002", "003"] and project.users() == {"admin@x.test": "owner"}


def test_a_run_killed_between_the_sides_is_completed_by_the_next(project: Project) -> None:
    from migrate.convex_side import ConvexSide
    from migrate.files import load_folder

    first = load_folder(project.folder / "migrations")[0]
    # What a kill -9 after Convex's mutation and before PostgreSQL's commit leaves.
    side = ConvexSide(project.convex.url, project.convex.deploy_key)
    side.apply(first, "ops")
    side.close()
    assert project.states()["001"] == "applied on convex only"
    done = project.migrate("apply", "--target", "001")
    assert done.returncode == 0 and "applying 001_initial_schema on postgres\n" in done.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001"]
    assert project.convex.store.count("users") == 2  # not inserted twice


def test_schema_violations_are_reported_by_status(project: Project) -> None:
    assert project.migrate("apply", "--target", "001").returncode == 0
    with project.convex.store.transaction():
        project.convex.store.insert("users", {"name": "Robot", "email": 7, "bot": True})
    done = project.migrate("status")
    assert done.returncode == 1
    assert "schema: users: 1 of 3 documents violate the declared schema" in done.stdout
    assert "email: not string" in done.stdout and "bot: not in the schema" in done.stdout
    skipped = project.migrate("status", "--no-schema-check")
    assert skipped.returncode == 0 and "schema:" not in skipped.stdout


def test_create_writes_the_next_file_and_schema_prints_convex_schema(project: Project) -> None:
    created = project.migrate("create", "--name", "add_notes")
    assert created.returncode == 0 and created.stdout.strip().endswith("migrations/004_add_notes.json")
    body = json.loads((project.folder / "migrations" / "004_add_notes.json").read_text())
    assert (body["version"], body["name"], body["data"]) == ("004", "add_notes", [])
    assert project.migrate("status").returncode == 0  # the template is a valid migration
    bad = project.migrate("create", "--name", "Add Notes")
    assert bad.returncode == 2 and "snake_case" in bad.stderr
    schema = project.migrate("schema", "--target", "002")
    assert schema.returncode == 0
    users = (
        "  users: defineTable({\n    name: v.string(),\n    email: v.string(),\n    role: v.optional(v.string()),\n"
        '  })\n    .index("by_email", ["email"]),'
    )
    assert users in schema.stdout
    assert "tags: defineTable({" in schema.stdout and "cockpit_migrations: defineTable({" in schema.stdout


def test_a_postgres_commit_that_fails_after_convex_applied_is_undone_on_convex(project: Project) -> None:
    # A deferred constraint is checked at COMMIT: after the Convex mutation has committed.
    late = json.loads(json.dumps(MIGRATIONS["002_add_tags"]))
    late["sql"]["up"] = (
        "CREATE TABLE seats (n int UNIQUE DEFERRABLE INITIALLY DEFERRED); INSERT INTO seats VALUES (1), (1)"
    )
    project.write("002_add_tags", late)
    done = project.migrate("apply")
    assert done.returncode == 1
    assert "postgres failed after convex applied 002_add_tags; rolling it back on convex" in done.stdout
    assert "002_add_tags failed on postgres: duplicate key value violates unique constraint" in done.stdout
    assert project.postgres_versions() == project.convex_versions() == ["001"]
    assert project.convex.store.count("tags") == 0 and project.users()["admin@x.test"] == "admin"


def test_a_convex_deployment_without_the_runner_is_a_clear_error(project: Project) -> None:
    for path in list(project.convex.functions):
        if path.startswith("cockpitMigrations:"):
            del project.convex.functions[path]
    done = project.migrate("status")
    assert done.returncode == 1
    assert "convex: cockpitMigrations:applied: Could not find function for 'cockpitMigrations:applied'" in done.stdout
    assert "copy convex/cockpitMigrations.ts into your project's convex/ folder" in done.stdout
    assert project.postgres_versions() == []
