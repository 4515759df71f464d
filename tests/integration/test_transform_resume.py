"""The transform joins its ranges in order as they finish; a failure midway and a retry give the
same file as one clean run: no range twice, none missing, nothing the checkpoint does not vouch for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from datapath import CONNECTIONS, MAPPING, env_for, step
from fakes import HEADER, Harness

import steps.rows.ranges
from cockpit.engine.views import Outcome
from cockpit.operator import Operator

pytestmark = pytest.mark.integration

# The shipped mapping's cases table alone (its reference would need users).
CASES_MAPPING = re.sub(r"(?m)^references = .*\n", "", "[table." + MAPPING.split("[table.")[2])
EXPORT = step("export", "postgres.export", 'connection = "v1"\nout = "export"\ntables = ["public.cases"]')
TRANSFORM = step(
    "transform",
    "transform",
    'mapping = "mapping.toml"\ninput = "export"\nout = "out"\nworkers = 1',
    'needs = ["export"]',
)


def _run(folder: Path, dsn: str) -> Harness:
    folder.mkdir(exist_ok=True)
    (folder / "mapping.toml").write_text(CASES_MAPPING)
    return Harness(folder, EXPORT + TRANSFORM, header=HEADER + CONNECTIONS, env=env_for(dsn, None)).start()


def test_a_transform_failing_midway_then_retried_writes_the_file_of_a_clean_run(
    tmp_path: Path, perm_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ranges of 64 KiB: the 1,000 cases make a dozen or more, joined one by one.
    monkeypatch.setattr(steps.rows.ranges, "CHUNK_BYTES", 64 << 10)
    clean = _run(tmp_path / "clean", perm_dsn)
    try:
        assert clean.settle(60) == Outcome.DONE, clean.engine.step_runtime("transform").reason
    finally:
        clean.close()
    expected = (tmp_path / "clean" / "out" / "cases.jsonl").read_bytes()

    real = steps.rows.ranges.convert_range
    calls: list[int] = []

    def failing_at_the_sixth(*job: Any) -> Any:
        calls.append(job[-1])
        if len(calls) == 6:
            raise OSError("disk gone")
        return real(*job)

    monkeypatch.setattr(steps.rows.ranges, "convert_range", failing_at_the_sixth)
    h = _run(tmp_path / "again", perm_dsn)
    try:
        assert h.settle(60) == Outcome.FAILED
        out = tmp_path / "again" / "out"
        partial = out / "cases.jsonl.partial"
        joined = h.journal.checkpoint(h.engine.run_id, "transform")["joined:public.cases"]
        assert joined["chunks"] == 5 and partial.stat().st_size == joined["bytes"]
        # As if the cockpit died between appending a part and writing the checkpoint; longer
        # than all that is left to append, so only cutting it off removes it.
        with partial.open("ab") as f:
            f.write(b'{"half": "bytes the checkpoint never vouched for' + b"x" * (2 << 20))
        h.engine.retry("transform", Operator("tester"))
        assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("transform").reason
    finally:
        h.close()
    assert calls[:5] == [0, 1, 2, 3, 4]
    assert calls[6] == 5, "the retry starts at the range that failed, not at the first"
    assert len(calls) > 8
    assert (out / "cases.jsonl").read_bytes() == expected
    assert not partial.exists() and not (out / ".cases.parts").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["cases"]["output_rows"] == expected.count(b"\n")


def test_an_empty_table_becomes_an_empty_file(tmp_path: Path, pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE public.cases (id uuid PRIMARY KEY, employer_name text)")
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "mapping.toml").write_text('[table."public.cases"]\ntarget = "cases"\n')
    h = Harness(folder, EXPORT + TRANSFORM, header=HEADER + CONNECTIONS, env=env_for(pg_dsn, None)).start()
    try:
        assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("transform").reason
    finally:
        h.close()
    assert (folder / "out" / "cases.jsonl").read_bytes() == b""
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    assert manifest["tables"]["cases"]["input_rows"] == manifest["tables"]["cases"]["output_rows"] == 0
