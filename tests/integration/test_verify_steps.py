"""Verification catches what went wrong in v2; the email audit and the backup, against a real
PostgreSQL. The backup is proven by restoring it into a fresh database."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from datapath import CALC_CHECKS, CONNECTIONS, MAPPING, PERM_TABLES, env_for, log_of, step
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.events import RollbackStarted, TriggerFired
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.seed import SCHEMA
from steps.postgres.backup import SchemaEditor, shown_command
from steps.postgres.json_rows import ROW
from steps.verify.sample import sample_condition

pytestmark = pytest.mark.integration


def run(
    folder: Path, body: str, dsn: str, standin: ConvexStandIn | None = None, timeout: float = 90, **options: object
) -> tuple[Harness, Outcome]:
    folder.mkdir(exist_ok=True)
    (folder / "mapping.toml").write_text(MAPPING)
    h = Harness(folder, body, header=HEADER + CONNECTIONS, env=env_for(dsn, standin), **options).start()
    try:
        outcome = h.settle(timeout)
    finally:
        h.close()
    return h, outcome


PREPARE = (
    step("export", "postgres.export", f'connection = "v1"\nout = "export"\ntables = {json.dumps(PERM_TABLES)}')
    + step(
        "transform",
        "transform",
        'mapping = "mapping.toml"\ninput = "export"\nout = "transformed"\nmax_rejects = 10',
        'needs = ["export"]',
    )
    + step("import", "convex.import", 'connection = "v2"\ninput = "transformed"', 'needs = ["transform"]')
    + step(
        "resolve",
        "convex.resolve_refs",
        'connection = "v2"\nmapping = "mapping.toml"\ntransformed = "transformed"',
        'needs = ["import"]',
    )
)
VERIFY_WITH = 'source = "v1"\ntarget = "v2"\nmapping = "mapping.toml"\ntransformed = "../prepare/transformed"'
CALC = CALC_CHECKS
ROLLBACK = """
[[step]]
id = "undo"
phase = "rollback"
kind = "shell"
with = { argv = ["true"] }

[[trigger]]
id = "data-loss"
when = { metric = "rows_missing", above = 0 }
action = "rollback"
within = "10m"
"""


def test_each_verification_catches_its_own_kind_of_damage(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    h, outcome = run(tmp_path / "prepare", PREPARE, perm_dsn, standin)
    assert outcome == Outcome.DONE, [
        h.engine.step_runtime(s).reason for s in ("export", "transform", "import", "resolve")
    ]
    store = standin.store
    cases = list(store.documents("cases"))
    lost, changed, dangling, rewaged = cases[3], cases[10], cases[20], cases[30]

    # One case lost in v2: counts fails, publishes rows_missing, and the data-loss trigger rolls back.
    store.delete(lost["_id"])
    h, outcome = run(tmp_path / "counts", step("counts", "verify.counts", VERIFY_WITH) + ROLLBACK, perm_dsn, standin)
    assert outcome == Outcome.ROLLED_BACK
    metrics = h.engine.view().metrics
    assert metrics["rows_missing"] == 1 and metrics["counts.cases.missing"] == 1 and metrics["rows_extra"] == 0
    assert "1 rows missing and 0 extra documents in v2" in h.engine.step_runtime("counts").reason
    assert [e.trigger_id for e in h.of_type(TriggerFired)] == ["data-loss"]
    assert h.of_type(RollbackStarted) and h.state("undo") == "succeeded"

    # One field changed: the full sample finds it (and the lost one), and names the field.
    store.patch(changed["_id"], {"employerName": "Someone Else LLC"})
    h, outcome = run(
        tmp_path / "sample", step("sample", "verify.sample", VERIFY_WITH + "\nfraction = 1.0"), perm_dsn, standin
    )
    assert outcome == Outcome.FAILED
    metrics = h.engine.view().metrics
    assert metrics["sample.rows_missing"] == 1 and metrics["sample.rows_differ"] == 1
    assert "employerName" in log_of(h, "sample")

    # A reference pointing nowhere, and one never resolved.
    store.patch(dangling["_id"], {"userId": "k57nowhere0000000000000000000000"})
    store.patch(cases[21]["_id"], {"userId": None})
    h, outcome = run(tmp_path / "refs", step("refs", "verify.refs", VERIFY_WITH), perm_dsn, standin)
    assert outcome == Outcome.FAILED
    # ...and the notifications of the lost case now point nowhere too.
    orphans = sum(1 for n in store.documents("notifications") if n.get("caseId") == lost["_id"])
    assert h.engine.view().metrics["refs_unresolved"] == 2 + orphans
    assert f"{2 + orphans} references do not lead to a v2 document" in h.engine.step_runtime("refs").reason

    # A wage changed by one cent: the total differs; the lost case also moves a status count.
    store.patch(rewaged["_id"], {"pwdWageAmount": int(rewaged.get("pwdWageAmount", 0)) + 1})
    h, outcome = run(
        tmp_path / "calc", step("calc", "verify.calc", 'source = "v1"\ntarget = "v2"') + CALC, perm_dsn, standin
    )
    assert outcome == Outcome.FAILED
    log = log_of(h, "calc")
    assert h.engine.view().metrics["calc.mismatches"] >= 2
    assert "total wages" in log and "cases per status" in log


def test_verification_on_an_intact_copy_passes_with_zeros(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    body = PREPARE + "".join(
        step(kind.split(".")[1], kind, VERIFY_WITH.replace("../prepare/", "") + extra, 'needs = ["resolve"]')
        for kind, extra in (("verify.counts", ""), ("verify.refs", ""), ("verify.sample", "\nfraction = 0.3"))
    )
    h, outcome = run(tmp_path, body, perm_dsn, standin)
    assert outcome == Outcome.DONE, [h.engine.step_runtime(s).reason for s in ("counts", "refs", "sample")]
    metrics = h.engine.view().metrics
    assert metrics["rows_missing"] == 0 and metrics["refs_unresolved"] == 0 and metrics["sample.rows_differ"] == 0
    # Each reference's bar ends full, an optional one (a notification's case) too.
    bars = {p.label: (p.done, p.total) for p in h.engine.view().steps["refs"].progress}
    assert bars["notifications.caseId"][0] == bars["notifications.caseId"][1] > 0, bars
    assert all(done == total for done, total in bars.values()), bars
    # The sample is reproducible: the same seed picks the same rows, another seed others.
    with psycopg.connect(perm_dsn) as conn:

        def picked(seed: str) -> set[str]:
            return {
                r[0]
                for r in conn.execute(
                    f"SELECT id::text FROM public.cases {ROW} WHERE {sample_condition('id', 0.3, seed)}"
                )
            }

        first, again, other = picked("cutover-cockpit"), picked("cutover-cockpit"), picked("another seed")
    assert first == again and first != other
    assert 200 < len(first) < 400  # 30% of 1,000 cases
    shown = re.search(r"public\.cases -> cases\s+(\d+)", log_of(h, "sample"))
    assert shown and int(shown.group(1)) == len(first)  # the step compared exactly those rows


def test_a_dry_run_reads_v1_and_writes_local_files_but_never_touches_v2(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    body = PREPARE + step("counts", "verify.counts", VERIFY_WITH.replace("../prepare/", ""), 'needs = ["resolve"]')
    h, outcome = run(tmp_path, body, perm_dsn, standin, dry_run=True)
    assert outcome == Outcome.DONE
    view = h.engine.view().steps
    # Probes run for real: the export and the transform (local files only).
    assert not view["export"].not_run and not view["transform"].not_run
    assert json.loads((tmp_path / "transformed" / "manifest.json").read_text())["tables"]["cases"]["output_rows"]
    # Mutations are described, not run; a probe after them would look at nothing, so it waits too.
    assert view["import"].not_run and view["resolve"].not_run and view["counts"].not_run
    assert log_of(h, "import").startswith("dry run: would import every table from transformed into 'v2'")
    assert h.engine.step_runtime("counts").reason == "dry run: needs resolve, which did not run"
    assert standin.store.tables() == [] and not any("/api/import" in r for r in standin.requests)


# -- the email audit -------------------------------------------------------------------------------

AUDIT_USERS = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text, email_confirmed_at timestamptz);
INSERT INTO auth.users VALUES
  ('00000000-0000-0000-0000-000000000001', 'Ana.Silva@example.com', now()),
  ('00000000-0000-0000-0000-000000000002', '  ana.silva@example.com ', now()),
  ('00000000-0000-0000-0000-000000000003', 'bo@example.com', NULL),
  ('00000000-0000-0000-0000-000000000004', NULL, NULL),
  ('00000000-0000-0000-0000-000000000005', 'cy@example.com', now());
"""


def test_the_email_audit_reports_duplicates_nulls_and_unverified(tmp_path: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(AUDIT_USERS)
    body = step("audit", "postgres.audit_emails", 'connection = "v1"\nreport = "reports/email-audit.md"')
    h, outcome = run(tmp_path / "fail", body, pg_dsn)
    assert outcome == Outcome.FAILED
    assert h.engine.step_runtime("audit").reason.startswith("1 emails are shared by several accounts")
    report = tmp_path / "fail" / "reports" / "email-audit.md"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert stat.S_IMODE(report.parent.stat().st_mode) == 0o700  # the folder it made for the report
    text = report.read_text()
    assert "| users | 5 |" in text and "| distinct lower(trim(email)) | 3 |" in text
    assert "| NULL emails | 1 |" in text and "| unverified emails | 2 |" in text
    assert (
        "`ana.silva@example.com`: 2 accounts (00000000-0000-0000-0000-000000000001, "
        "00000000-0000-0000-0000-000000000002)"
    ) in text
    assert "00000000-0000-0000-0000-000000000004" in text.split("without an email")[1]
    log = log_of(h, "audit")
    assert "a***@example.com: 2 accounts" in log and "ana.silva" not in log.lower()
    metrics = h.engine.view().metrics
    assert (metrics["audit.users"], metrics["audit.unique_emails"], metrics["audit.duplicate_groups"]) == (5, 3, 1)

    h, outcome = run(tmp_path / "warn", body + 'on_duplicates = "warn"\n', pg_dsn)
    assert outcome == Outcome.DONE
    assert "warning: 1 emails are shared by several accounts" in log_of(h, "audit")
    h, outcome = run(tmp_path / "strict", body + 'on_duplicates = "warn"\non_unverified = "fail"\n', pg_dsn)
    assert outcome == Outcome.FAILED and "2 emails are unverified" in h.engine.step_runtime("audit").reason
    assert not list((tmp_path / "strict" / "reports").glob("*.partial"))


def test_the_audit_names_a_missing_table(tmp_path: Path, pg_dsn: str) -> None:
    body = step("audit", "postgres.audit_emails", 'connection = "v1"\nreport = "audit.md"\ntable = "auth.people"')
    h, outcome = run(tmp_path, body, pg_dsn)
    assert outcome == Outcome.FAILED
    assert 'auth.people: relation "auth.people" does not exist' in h.engine.step_runtime("audit").reason
    assert not (tmp_path / "audit.md").exists()


# -- the backup ------------------------------------------------------------------------------------


def table_digests(dsn: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of all its rows in key order."""
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id::text), '')) FROM {t} x"
            ).fetchone()  # type: ignore[misc]
            for t in PERM_TABLES
        }


def test_the_backup_restores_into_a_fresh_database_with_every_row(
    tmp_path: Path, perm_dsn: str, postgres: object
) -> None:
    h, outcome = run(tmp_path, step("backup", "postgres.backup", 'connection = "v1"\nout = "backup"'), perm_dsn)
    assert outcome == Outcome.DONE, h.engine.step_runtime("backup").reason
    backup = tmp_path / "backup"
    manifest = json.loads((backup / "manifest.json").read_text())
    import hashlib

    for name in ("roles.sql", "schema.sql", "data.sql"):
        assert manifest["files"][name]["sha256"] == hashlib.sha256((backup / name).read_bytes()).hexdigest()
    schema = (backup / "schema.sql").read_text()
    assert 'CREATE TABLE "public"."cases"' in schema and "auth.users" not in schema.split("REFERENCES")[0]
    assert '"auth"."users"' not in schema.replace('REFERENCES "auth"."users"', "")  # auth is Supabase's
    log = log_of(h, "backup")
    assert "x --exclude-schema)" in log and "--exclude-schema graphql" not in log

    # A fresh project: Supabase's own part (roles, the auth schema) exists; schema.sql and data.sql go on top.
    fresh = postgres.create_database(f"restore_{os.getpid()}")  # type: ignore[attr-defined]
    platform = SCHEMA.split("CREATE TABLE public.cases")[0]
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute(platform.encode())
    psql = str(postgres.bin_dir / "psql")  # type: ignore[attr-defined]
    # The restore of Supabase's guide: one transaction, triggers and foreign keys off for the data.
    restore = subprocess.run(
        [
            psql,
            "-X",
            "-q",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            fresh,
            "-f",
            str(backup / "schema.sql"),
            "-c",
            "SET session_replication_role = replica",
            "-f",
            str(backup / "data.sql"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restore.returncode == 0, restore.stderr[-2000:]
    assert table_digests(fresh) == table_digests(perm_dsn)


FAKE_PG_DUMP = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi
{ echo "argv: $*"; echo "password: $PGPASSWORD"; } >> "$RECORD"
echo "-- dumped"
"""


def test_the_password_reaches_pg_dump_by_environment_never_by_argv(tmp_path: Path, perm_dsn: str) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("pg_dump", "pg_dumpall"):
        (tools / name).write_text(FAKE_PG_DUMP)
        (tools / name).chmod(0o755)
    record = tmp_path / "record.txt"
    os.environ["RECORD"] = str(record)
    try:
        dsn = perm_dsn.replace("postgres@", "postgres:pw-s3cret-7781@")  # trust auth: accepted, unused
        h, outcome = run(
            tmp_path / "run",
            step("backup", "postgres.backup", 'connection = "v1"\nout = "backup"\nbin_dir = "../tools"'),
            dsn,
        )
    finally:
        del os.environ["RECORD"]
    assert outcome == Outcome.DONE, h.engine.step_runtime("backup").reason
    calls = record.read_text()
    assert calls.count("password: pw-s3cret-7781") == 3
    assert all("pw-s3cret" not in line for line in calls.splitlines() if line.startswith("argv"))
    assert "pw-s3cret" not in log_of(h, "backup")
    assert "pw-s3cret" not in (tmp_path / "run" / "backup" / "manifest.json").read_text()


def test_the_schema_is_edited_line_by_line_as_supabase_db_dump_does() -> None:
    dump = (
        b'GRANT USAGE ON SCHEMA "auth" TO "anon";\nGRANT SELECT ON TABLE "public"."cases" TO "anon";\n'
        b'ALTER DEFAULT PRIVILEGES FOR ROLE "supabase_admin" IN SCHEMA "public" GRANT ALL ON TABLES TO "anon";\n'
        b'REVOKE ALL ON SCHEMA "storage" FROM "anon";\nCREATE TABLE "public"."x" (id int);'
    )
    editor = SchemaEditor()
    # Fed in blocks that cut lines anywhere, as pg_dump's output arrives.
    out = b"".join(editor.feed(dump[i : i + 7]) for i in range(0, len(dump), 7)) + editor.finish()
    assert out.decode().splitlines() == [
        '-- GRANT USAGE ON SCHEMA "auth" TO "anon";',
        'GRANT SELECT ON TABLE "public"."cases" TO "anon";',
        '-- ALTER DEFAULT PRIVILEGES FOR ROLE "supabase_admin" IN SCHEMA "public" GRANT ALL ON TABLES TO "anon";',
        '-- REVOKE ALL ON SCHEMA "storage" FROM "anon";',
        'CREATE TABLE "public"."x" (id int);',
    ]


def test_shown_command_counts_the_exclusions() -> None:
    argv = [
        "/usr/lib/postgresql/17/bin/pg_dump",
        "--data-only",
        "--exclude-schema",
        "a",
        "--exclude-schema",
        "b",
        "--exclude-table",
        "t",
        "--schema",
        "*",
    ]
    assert shown_command(argv) == "pg_dump --data-only --schema * (2 x --exclude-schema) (1 x --exclude-table)"
