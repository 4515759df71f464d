"""postgres.export with several connections per table (`jobs`): the same file as one connection
writes, byte for byte, its manifest true to it, and nothing left behind when it stops."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import psycopg
import pytest
from datapath import CONNECTIONS, env_for, step
from fakes import HEADER, Harness

import steps.postgres.export
from cockpit.engine.views import Outcome
from cockpit.operator import Operator

pytestmark = pytest.mark.integration


def _export(folder: Path, dsn: str, jobs: int) -> Harness:
    body = step(
        "export",
        "postgres.export",
        f'connection = "v1"\nout = "export"\njobs = {jobs}\ntables = ["auth.users", "public.cases"]',
    )
    return Harness(folder, body, header=HEADER + CONNECTIONS, env=env_for(dsn, None)).start()


def _on_the_last_range(monkeypatch: pytest.MonkeyPatch, condition: str) -> None:
    """Split every table, and add `condition` to the query of each table's last page range."""
    monkeypatch.setattr(steps.postgres.export, "PARALLEL_FROM_BYTES", 0)
    real_in_range = steps.postgres.export._in_range

    def in_range(source: str, pages: tuple[int, int | None] | None) -> str:
        text = real_in_range(source, pages)
        return f"{text} AND {condition}" if pages is not None and pages[1] is None else text

    monkeypatch.setattr(steps.postgres.export, "_in_range", in_range)


def test_several_connections_write_the_same_file_as_one(
    tmp_path: Path, perm_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed is small: every table is "large" here, so it is split into page ranges.
    monkeypatch.setattr(steps.postgres.export, "PARALLEL_FROM_BYTES", 0)
    with psycopg.connect(perm_dsn) as conn:
        pages = conn.execute("SELECT relpages FROM pg_class WHERE oid = 'public.cases'::regclass").fetchone()
        assert pages is not None and pages[0] >= 3, "the table must span pages for the ranges to differ"
        expected_rows = conn.execute("SELECT count(*) FROM public.cases").fetchone()[0]  # type: ignore[index]
    files = {}
    for jobs in (1, 3):
        folder = tmp_path / f"jobs{jobs}"
        folder.mkdir()
        h = _export(folder, perm_dsn, jobs)
        try:
            assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("export").reason
            log = h.journal.log_lines(h.engine.run_id, "export")
        finally:
            h.close()
        export = folder / "export"
        assert sorted(p.name for p in export.iterdir()) == ["cases.jsonl", "manifest.json", "users.jsonl"]
        manifest = json.loads((export / "manifest.json").read_text())
        cases = manifest["tables"]["public.cases"]
        data = (export / "cases.jsonl").read_bytes()
        assert cases["rows"] == expected_rows == data.count(b"\n")
        assert cases["bytes"] == len(data)
        assert cases["sha256"] == hashlib.sha256(data).hexdigest()
        assert stat.S_IMODE(os.stat(export / "cases.jsonl").st_mode) == 0o600
        if jobs > 1:
            assert any("by 3 connections" in line for line in log), log
        files[jobs] = data
    # Page ranges in order read the rows in the order of one sequential scan.
    assert files[3] == files[1]


def test_a_failed_connection_stops_the_others_and_leaves_no_pieces(
    tmp_path: Path, perm_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last range's query fails at its first row: the step fails and the other connections stop.
    _on_the_last_range(monkeypatch, "1 / 0 = 1")
    h = _export(tmp_path, perm_dsn, 3)
    try:
        assert h.settle(60) == Outcome.FAILED
        assert "22012: division by zero" in h.engine.step_runtime("export").reason
    finally:
        h.close()
    # The first table (auth.users) fails: not one file of it, whole or in pieces, is left.
    assert list((tmp_path / "export").iterdir()) == []


def test_cancelling_a_parallel_export_leaves_no_pieces(
    tmp_path: Path, perm_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each row of the last range waits a little: the export is still running when cancelled.
    _on_the_last_range(monkeypatch, "pg_sleep(0.01) IS NOT NULL")
    h = _export(tmp_path, perm_dsn, 3)
    try:
        h.wait_for(lambda: bool(h.engine.step_runtime("export").progress), 30)
        h.engine.cancel("export", Operator("tester"))
        h.wait_for(lambda: h.state("export") != "running", 10)
        assert h.state("export") == "cancelled"
    finally:
        h.close()
    assert [p.name for p in (tmp_path / "export").iterdir() if "partial" in p.name or p.name == "cases.jsonl"] == []
