"""v1 read the same on any server: export, transform, import and the sample under a database
whose settings are not the export's (a time zone whose offset is not a whole number of hours,
west and east of UTC, another DateStyle, IntervalStyle and float precision), with the column
types that carry the known traps: json values over several lines, timestamps at year 1 and
9999, field names Convex refuses at any depth, and NaN and the infinities."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from datapath import CONNECTIONS, env_for, log_of
from fakes import HEADER, Harness

import steps.postgres.export
import steps.postgres.json_rows
from cockpit.engine.views import Outcome
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

MAPPING = """
[table."public.exact"]
target = "exact"
timestamps = ["at_tz", "at_plain"]
json = { doc = "any", docs = "any", payload = "any" }
"""

SCHEMA = """
CREATE TABLE public.exact (
    id bigint PRIMARY KEY,
    doc json,
    docs json[],
    at_tz timestamptz,
    at_plain timestamp,
    payload jsonb,
    extra jsonb,
    r real,
    d double precision,
    n numeric,
    label text,
    "naïve" text
)
"""

YEAR_1 = -62_135_596_800_000  # 0001-01-01T00:00:00Z in Unix milliseconds
YEAR_9999 = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

# id -> (column values, expected reject reason or None)
ROWS: dict[int, tuple[dict[str, object], str | None]] = {
    1: ({"doc": '{"a":\n 1,\r\n "b": "x\\ny"}', "at_tz": "0001-01-01 00:00:00+00", "at_plain": "0001-01-01"}, None),
    2: ({"doc": '{"a":\r1}', "at_tz": "9999-12-31 23:59:59.999+00", "at_plain": "9999-12-31 23:59:59.999"}, None),
    3: ({"docs": ['{"k":\n1}', "[\n2\n]"], "d": 0.30000000000000004, "r": 0.1, "n": "12345678901234567890.5"}, None),
    4: ({"payload": '{"é": 1}'}, "field name 'é' holds a character Convex refuses"),
    5: ({"payload": '{"a": {"é": 1}}'}, "field name 'é' holds a character Convex refuses"),
    6: ({"payload": '{"a": [{"tab\\there": 1}]}'}, "field name 'tab\\there' holds a character Convex refuses"),
    7: ({"extra": '{"a": {"$x": 1}}'}, "field name '$x' is reserved in Convex"),
    8: ({"extra": '{"": 1}'}, "an empty field name"),
    9: ({"r": "NaN"}, "r: NaN is not a finite number"),
    10: ({"d": "Infinity"}, "d: Infinity is not a finite number"),
    11: ({"d": "-Infinity"}, "d: -Infinity is not a finite number"),
    12: ({"n": "NaN"}, "n: NaN is not a finite number"),
    13: ({"n": "-Infinity"}, "n: -Infinity is not a finite number"),
    14: ({"r": "Infinity"}, "r: Infinity is not a finite number"),
    15: ({"r": "-Infinity"}, "r: -Infinity is not a finite number"),
    16: ({"d": "NaN"}, "d: NaN is not a finite number"),
    17: ({"n": "Infinity"}, "n: Infinity is not a finite number"),
    18: ({"payload": '{"$top": 1}'}, "field name '$top' is reserved in Convex"),
    19: ({"payload": r'{"bell\u0007": 1}'}, "field name 'bell\\x07' holds a character Convex refuses"),
    # A column whose document field Convex refuses: a value there rejects the row, NULL does not.
    20: ({'"naïve"': "x"}, "column 'naïve' would be written as field name 'naïve' holds a character"),
}

BODY = (
    CONNECTIONS
    + """
[[step]]
id = "export"
phase = "window"
kind = "postgres.export"
with = { connection = "v1", out = "export", tables = ["public.exact"], jobs = 2 }

[[step]]
id = "transform"
phase = "window"
kind = "transform"
needs = ["export"]
with = { mapping = "mapping.toml", input = "export", out = "transformed", max_rejects = 100 }

[[step]]
id = "import"
phase = "window"
kind = "convex.import"
needs = ["transform"]
with = { connection = "v2", input = "transformed" }

[[step]]
id = "sample"
phase = "window"
kind = "verify.sample"
needs = ["import"]
with = { source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed", fraction = 1.0 }
"""
)


def _seed(dsn: str, zone: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = conn.info.dbname
        # Everything the export's text could depend on, set otherwise than the export wants it.
        for setting, value in (
            ("TimeZone", zone),
            ("DateStyle", "SQL, DMY"),
            ("IntervalStyle", "sql_standard"),
            ("extra_float_digits", "-3"),
            ("bytea_output", "escape"),
        ):
            conn.execute(f"ALTER DATABASE \"{database}\" SET {setting} = '{value}'")
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
        for row_id, (values, _reason) in ROWS.items():
            columns = ["id", *values]
            placeholders = ", ".join(["%s"] * len(columns))
            conn.execute(
                f"INSERT INTO public.exact ({', '.join(columns)}) VALUES ({placeholders})",
                (row_id, *values.values()),
            )


@pytest.mark.parametrize("zone", ["America/St_Johns", "Asia/Kathmandu"])
def test_v1_is_read_the_same_whatever_the_servers_settings(
    tmp_path: Path, pg_dsn: str, standin: ConvexStandIn, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two connections for the table, as for a large one: both sessions are pinned.
    monkeypatch.setattr(steps.postgres.export, "PARALLEL_FROM_BYTES", 0)
    _seed(pg_dsn, zone)
    (tmp_path / "mapping.toml").write_text(MAPPING)
    h = Harness(tmp_path, BODY, header=HEADER, env=env_for(pg_dsn, standin)).start()
    try:
        outcome = h.settle(90)
        reasons = {s: h.engine.step_runtime(s).reason for s in ("export", "transform", "import", "sample")}
        assert outcome == Outcome.DONE, reasons
        assert "by 2 connections" in log_of(h, "export")
        manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())["tables"]["public.exact"]
        lines = (tmp_path / "export" / "exact.jsonl").read_bytes().splitlines()
        assert manifest["rows"] == len(lines) == len(ROWS)
        assert manifest["columns"]["doc"] == "json" and manifest["columns"]["n"] == "numeric"
        # Every row is a document or a reject with its reason, never both, never neither.
        rejects = [json.loads(line) for line in (tmp_path / "transformed" / "exact.rejects.jsonl").open()]
        rejected = {json.loads(r["row"])["id"]: r["reason"] for r in rejects}
        expected = {row_id: reason for row_id, (_values, reason) in ROWS.items() if reason}
        assert set(rejected) == set(expected), rejected
        for row_id, reason in expected.items():
            assert reason in rejected[row_id], (row_id, rejected[row_id])
        documents = {d["legacyId"]: d for d in standin.store.documents("exact")}
        assert set(documents) == {str(i) for i, (_v, reason) in ROWS.items() if not reason}
        first, second, third = documents["1"], documents["2"], documents["3"]
        assert first["doc"] == {"a": 1, "b": "x\ny"}
        assert first["atTz"] == first["atPlain"] == YEAR_1
        assert second["doc"] == {"a": 1}
        assert second["atTz"] == second["atPlain"] == YEAR_9999
        assert third["docs"] == [{"k": 1}, [2]]
        assert third["d"] == 0.30000000000000004  # every digit, whatever extra_float_digits says
        assert third["r"] == pytest.approx(0.1, rel=1e-7)
        assert third["n"] == 12345678901234567890.5
        # The sample read v1 as the export did: no row differs, none is missing.
        assert h.engine.view().metrics["sample.rows_differ"] == 0
        assert h.engine.view().metrics["sample.rows_missing"] == 0
    finally:
        h.close()


def test_a_value_over_two_lines_fails_the_export_naming_the_table(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if json were read verbatim (the fault this guards against): the counts must disagree.
    monkeypatch.setattr(steps.postgres.json_rows, "_NORMALISED", {})
    _seed(pg_dsn, "UTC")
    (tmp_path / "mapping.toml").write_text(MAPPING)
    body = BODY.split('[[step]]\nid = "transform"')[0]
    h = Harness(tmp_path, body, header=HEADER, env=env_for(pg_dsn)).start()
    try:
        assert h.settle(60) == Outcome.FAILED
        reason = h.engine.step_runtime("export").reason
        assert "public.exact: PostgreSQL sent" in reason and "lines" in reason, reason
        assert not (tmp_path / "export" / "exact.jsonl").exists()
    finally:
        h.close()
