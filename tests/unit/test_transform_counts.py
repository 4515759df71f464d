"""input rows = documents + rejects, for every table: a transform where they do not add up fails,
naming the table, and writes no manifest that would let the import go on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from steps.manifest import write_manifest

MAPPING = '[table."public.notes"]\ntarget = "notes"\n'
BODY = """
[[step]]
id = "transform"
phase = "window"
kind = "transform"
with = { mapping = "mapping.toml", input = "export", out = "transformed" }
"""


def _export(folder: Path, lines: list[bytes], rows: int) -> None:
    folder.mkdir(mode=0o700)
    data = b"".join(line + b"\n" for line in lines)
    (folder / "notes.jsonl").write_bytes(data)
    entry = {"file": "notes.jsonl", "rows": rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_manifest(folder, {"tables": {"public.notes": entry}, "format": "jsonLines"})


def test_rows_that_do_not_add_up_fail_the_transform_naming_the_table(tmp_path: Path) -> None:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    # The manifest counts three rows; the file holds two lines.
    _export(tmp_path / "export", [b'{"id": "a", "text": "x"}', b'{"id": "b", "text": "y"}'], rows=3)
    h = Harness(tmp_path, BODY, header=HEADER).start()
    try:
        assert h.settle(30) == Outcome.FAILED
        reason = h.engine.step_runtime("transform").reason
        assert reason.startswith("public.notes: 2 rows read, 2 documents and 0 rejects"), reason
        assert "the export has 3 rows" in reason
        assert not (tmp_path / "transformed" / "manifest.json").exists()
    finally:
        h.close()


def test_rows_that_add_up_pass(tmp_path: Path) -> None:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    _export(tmp_path / "export", [b'{"id": "a", "text": "x"}', b'{"id": "b", "n": NaN}'], rows=2)
    h = Harness(
        tmp_path, BODY.replace('out = "transformed" }', 'out = "transformed", max_rejects = 1 }'), header=HEADER
    )
    h.start()
    try:
        assert h.settle(30) == Outcome.DONE, h.engine.step_runtime("transform").reason
        manifest = json.loads((tmp_path / "transformed" / "manifest.json").read_text())
        entry = manifest["tables"]["notes"]
        assert (entry["input_rows"], entry["output_rows"], entry["rejects"]) == (2, 1, 1)
    finally:
        h.close()
