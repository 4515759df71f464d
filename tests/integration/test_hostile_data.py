"""Hostile data through export, transform and import: nothing is corrupted, nothing disappears.

Every row either arrives in v2 byte-exact or lands in the rejects file with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from datapath import CONNECTIONS, env_for
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

HOSTILE_MAPPING = """
[table."public.hostile"]
target = "hostile"
timestamps = ["happened_at"]
cents = ["amount"]
json = { payload = "any" }
required = ["must"]
"""

SCHEMA = """
CREATE TABLE public.hostile (
    id uuid PRIMARY KEY,
    label text,
    amount numeric,
    ratio double precision,
    big bigint,
    happened_at timestamptz,
    payload jsonb,
    tags text[],
    must text
)
"""

# (id suffix, label, amount, ratio, big, happened_at, payload, tags, must, expected reject reason or None)
ROWS: list[tuple[str, object, object, object, object, object, object, object, object, str | None]] = [
    (
        "01",
        'He said "hi" \\ back\\slash\nnew line\ttab \u2603 \U0001f600 \u0001\u0002 end',
        "12.34",
        0.5,
        1,
        "2026-12-05 23:00:00+00",
        '{"a": "x\\\\y\\"z", "n": [1, 2.5, null], "deep": {"k": "\\u00e9"}}',
        ["a,b", 'q"uote', "back\\slash", None],
        "x",
        None,
    ),
    ("02", None, None, None, None, None, None, None, "x", None),
    ("03", "", "-0.01", -0.0, -9007199254740991, "1970-01-01 00:00:00+00", "[]", [], "", None),
    (
        "04",
        "max safe cents",
        "90071992547409.91",
        1e308,
        9007199254740991,
        "9999-12-31 23:59:59.999+00",
        '{"s": "line\\nbreak \\u2028 separator", "e": 1e-7}',
        ["x"],
        "x",
        None,
    ),
    ("05", "too many cents", "99999999999999999.99", 1.0, 0, "2000-01-01 00:00:00+00", "{}", None, "x", "amount"),
    ("06", "sub-cent amount", "0.005", 1.0, 0, "2000-01-01 00:00:00+00", "{}", None, "x", "amount"),
    ("07", "infinite time", "1.00", 1.0, 0, "infinity", "{}", None, "x", "happened_at"),
    ("08", "far future", "1.00", 1.0, 0, "294276-12-31 00:00:00+00", "{}", None, "x", "happened_at"),
    ("09", "null required", "1.00", 1.0, 0, "2000-01-01 00:00:00+00", "{}", None, None, "NULL in required field"),
    (
        "10",
        "oversized json",
        "1.00",
        1.0,
        0,
        "2000-01-01 00:00:00+00",
        json.dumps({"blob": "x" * (1 << 20)}),
        None,
        "x",
        "the document is",
    ),
    ("11", "unsafe bigint", "1.00", 1.0, 2**62, "2000-01-01 00:00:00+00", "{}", None, "x", "big"),
]


def _uuid(suffix: str) -> str:
    return f"00000000-0000-4000-8000-0000000000{suffix}"


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
        for suffix, *values, _reason in ROWS:
            conn.execute(
                "INSERT INTO public.hostile VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", (_uuid(suffix), *values)
            )


BODY = (
    CONNECTIONS
    + """
[[step]]
id = "export"
phase = "window"
kind = "postgres.export"
with = { connection = "v1", out = "export", tables = ["public.hostile"] }

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
id = "counts"
phase = "window"
kind = "verify.counts"
needs = ["import"]
with = { source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed" }

[[step]]
id = "sample"
phase = "window"
kind = "verify.sample"
needs = ["import"]
with = { source = "v1", target = "v2", mapping = "mapping.toml", transformed = "transformed", fraction = 1.0 }
"""
)


def test_hostile_rows_arrive_exact_or_are_rejected_with_their_reason(
    tmp_path: Path, pg_dsn: str, standin: ConvexStandIn
) -> None:
    _seed(pg_dsn)
    (tmp_path / "mapping.toml").write_text(HOSTILE_MAPPING)
    env = env_for(pg_dsn, standin)
    h = Harness(tmp_path, BODY, header=HEADER, env=env).start()
    try:
        outcome = h.settle(60)
        reasons = {s: h.engine.step_runtime(s).reason for s in ("export", "transform", "import", "counts", "sample")}
        assert outcome == Outcome.DONE, reasons
        # Rejects: each bad row once, with its reason and its line in the export.
        export_lines = (tmp_path / "export" / "hostile.jsonl").read_bytes().splitlines()
        assert len(export_lines) == len(ROWS)
        rejects = [json.loads(line) for line in (tmp_path / "transformed" / "hostile.rejects.jsonl").open()]
        rejected = {json.loads(r["row"])["id"]: r for r in rejects}
        expected = {_uuid(s): reason for s, *_values, reason in ROWS if reason}
        assert set(rejected) == set(expected)
        for row_id, reason in expected.items():
            assert reason in rejected[row_id]["reason"], rejected[row_id]
            assert json.loads(export_lines[rejected[row_id]["line"] - 1])["id"] == row_id
        # Everything else is in v2, every string exact.
        documents = {d["legacyId"]: d for d in standin.store.documents("hostile")}
        assert set(documents) == {_uuid(s) for s, *_values, reason in ROWS if not reason}
        first = documents[_uuid("01")]
        assert first["label"] == ROWS[0][1]
        assert first["amount"] == 1234
        assert first["happenedAt"] == 1_796_511_600_000
        assert first["payload"] == {"a": 'x\\y"z', "n": [1, 2.5, None], "deep": {"k": "\u00e9"}}
        assert first["tags"] == ["a,b", 'q"uote', "back\\slash", None]
        assert documents[_uuid("04")]["amount"] == 9_007_199_254_740_991
        assert documents[_uuid("03")]["amount"] == -1
        assert "label" not in documents[_uuid("02")]  # NULL fields are omitted
        assert h.engine.view().metrics["rows_missing"] == 0
    finally:
        h.close()


def test_invalid_utf8_from_a_sql_ascii_database_is_rejected_not_lost(tmp_path: Path, postgres: object) -> None:
    dsn = postgres.create_database(f"ascii_{id(tmp_path)}", encoding="SQL_ASCII")  # type: ignore[attr-defined]
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.hostile (id uuid PRIMARY KEY, label text, must text)")
        conn.execute(
            "INSERT INTO public.hostile VALUES (%s, 'fine', 'x'), (%s, convert_from('\\x6869ff'::bytea, "
            "'SQL_ASCII'), 'x')",
            (_uuid("01"), _uuid("02")),
        )
    (tmp_path / "mapping.toml").write_text('[table."public.hostile"]\ntarget = "hostile"\n')
    body = BODY.split('[[step]]\nid = "import"')[0]
    env = env_for(dsn)
    h = Harness(tmp_path, body, header=HEADER, env=env).start()
    try:
        assert h.settle(60) == Outcome.DONE
        rejects = [json.loads(line) for line in (tmp_path / "transformed" / "hostile.rejects.jsonl").open()]
        assert len(rejects) == 1 and rejects[0]["reason"].startswith("invalid UTF-8 at byte")
        lines = (tmp_path / "export" / "hostile.jsonl").read_bytes().splitlines()
        assert b"\xff" in lines[rejects[0]["line"] - 1]  # the line number leads to the bad row
        documents = (tmp_path / "transformed" / "hostile.jsonl").read_text().splitlines()
        assert [json.loads(d)["label"] for d in documents] == ["fine"]
    finally:
        h.close()
