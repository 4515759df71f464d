"""A checklist's items that carry a `check`: ticked by the probe with its evidence, or shown why not."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import Harness, write_runbook

from cockpit import runbook_loader
from cockpit.engine import ActionRefused
from cockpit.engine.views import Outcome
from cockpit.events import GateOpened, ItemChecked, OperatorActed
from cockpit.operator import Operator
from cockpit.status import status_facts, status_text

ALICE = Operator.current({"USER": "alice", "SSH_CONNECTION": "10.1.2.3 52344 10.0.0.1 22"})


def _checklist(flag: Path, *, effect: str = "probe") -> str:
    # The check is a real probe kind: a read-only command that passes when the flag file exists.
    return f"""
[[step]]
id = "decom"
phase = "window"
kind = "checklist"

[[step.with.items]]
item = "Old service answers 410"

[step.with.items.check]
kind = "shell"
with = {{ argv = ["sh", "-c", "echo probing; test -e '{flag}' && echo found it"], effect = "{effect}" }}

[[step.with.items]]
item = "No error reports referencing v1"
"""


def test_an_item_whose_check_passes_is_ticked_by_it_with_its_evidence(tmp_path: Path) -> None:
    flag = tmp_path / "gone"
    flag.touch()
    h = Harness(tmp_path, _checklist(flag)).start()
    try:
        h.wait_state("decom", "waiting")
        gate = h.engine.view().steps["decom"].gate
        assert gate is not None and gate.ticked == frozenset({0})
        [checked] = h.of_type(ItemChecked)
        assert checked.passed and checked.index == 0 and checked.item == "Old service answers 410"
        assert checked.evidence[-1] == "found it"
        # Journaled, with the evidence, for the review after.
        rows = [e for e in h.journal.events(h.engine.run_id) if e.type == "item_checked"]
        assert rows and rows[0].evidence[-1] == "found it"
        # The only item left is the one without a check; the operator ticks it with a note.
        h.engine.tick("decom", 1, ALICE, "asked support: nothing since Dec 6")
        assert h.settle() == Outcome.DONE
        ticks = [e for e in h.of_type(OperatorActed) if e.action == "tick"]
        assert [t.detail for t in ticks] == [
            "No error reports referencing v1 (note: asked support: nothing since Dec 6)"
        ]
        log = h.journal.log_lines(h.engine.run_id, "decom")
        assert "  check 1: found it" in log
        assert "[cockpit] ticked by its check: Old service answers 410" in log
        # `cockpit status` lists it for the review after, with what the check saw.
        text = status_text(status_facts(h.journal, h.journal.run(h.engine.run_id)))
        assert "items ticked by their checks (1):" in text
        assert "decom: Old service answers 410 (found it)" in text
    finally:
        h.close()


def test_a_failing_check_shows_why_and_runs_again_on_demand(tmp_path: Path) -> None:
    flag = tmp_path / "gone"
    h = Harness(tmp_path, _checklist(flag)).start()
    try:
        h.wait_state("decom", "waiting")
        [opened] = [g for g in h.of_type(GateOpened) if g.step_id == "decom"]
        assert opened.notes == ("sh exited with status 1", "")
        gate = h.engine.view().steps["decom"].gate
        assert gate is not None and gate.ticked == frozenset()
        flag.touch()
        h.engine.recheck("decom", ALICE)
        h.wait_for(lambda: len(h.of_type(ItemChecked)) == 2)
        h.wait_state("decom", "waiting")
        assert [c.passed for c in h.of_type(ItemChecked)] == [False, True]
        h.engine.tick("decom", 1, ALICE)
        assert h.settle() == Outcome.DONE
        assert ("recheck", "decom") in [(e.action, e.step_id) for e in h.of_type(OperatorActed)]
    finally:
        h.close()


def test_recheck_is_refused_without_a_check_left_to_run(tmp_path: Path) -> None:
    flag = tmp_path / "gone"
    flag.touch()
    h = Harness(tmp_path, _checklist(flag)).start()
    try:
        h.wait_state("decom", "waiting")
        with pytest.raises(ActionRefused, match="no unticked item of 'decom' has a check"):
            h.engine.recheck("decom", ALICE)
    finally:
        h.close()


def test_cockpit_check_refuses_a_check_that_changes_things_or_is_unknown(tmp_path: Path) -> None:
    path = write_runbook(tmp_path, _checklist(tmp_path / "x", effect="mutate"))
    _, problems = runbook_loader.check(path)
    [problem] = [p for p in problems if p.severity == "error"]
    assert "a check must only look, but shell with these parameters is a mutate step" in problem.message
    # At the check's `kind`, where the operator fixes it.
    assert problem.line == path.read_text().splitlines().index('kind = "shell"') + 1

    text = _checklist(tmp_path / "x").replace('kind = "shell"', 'kind = "shel"')
    _, problems = runbook_loader.check(write_runbook(tmp_path, text))
    assert any("unknown step kind 'shel' (did you mean 'shell'?)" in p.message for p in problems)

    text = _checklist(tmp_path / "x").replace("argv = [", "args = [")
    _, problems = runbook_loader.check(write_runbook(tmp_path, text))
    assert any("its shell check" in p.message and "args" in p.message for p in problems)


def _backup(folder: Path) -> None:
    import hashlib

    from steps.manifest import write_manifest

    folder.mkdir(parents=True)
    files = {}
    for name, data in {"schema.sql": b"CREATE TABLE cases ();\n", "data.sql": b"COPY cases FROM stdin;\n\\.\n"}.items():
        (folder / name).write_bytes(data)
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_manifest(folder, {"files": files, "made_at": "2026-12-06T04:01:00Z"})


def _backup_checklist() -> str:
    return """
[[step]]
id = "kept"
phase = "window"
kind = "checklist"
[[step.with.items]]
item = "v1's data backed up locally"
[step.with.items.check]
kind = "files.verify"
with = { folder = "backup" }
[[step.with.items]]
item = "v1's API is gone"
[step.with.items.check]
kind = "http.check"
with = { url = "http://127.0.0.1:9/health", expect_status = 410, or_gone = true, timeout = "2s" }
"""


def test_a_backup_that_matches_its_manifest_and_a_service_that_is_gone_tick_themselves(tmp_path: Path) -> None:
    _backup(tmp_path / "backup")
    h = Harness(tmp_path, _backup_checklist()).start()
    try:
        assert h.settle() == Outcome.DONE  # every item ticked by its check: nobody was asked
        first, second = h.of_type(ItemChecked)
        assert (
            first.passed
            and first.evidence[-1] == "all 2 files match the manifest (49 bytes, made 2026-12-06T04:01:00Z)"
        )
        assert second.passed and "-> gone (ConnectError" in second.evidence[-1]
    finally:
        h.close()


def test_a_backup_changed_since_its_manifest_is_not_ticked_and_says_which_file(tmp_path: Path) -> None:
    _backup(tmp_path / "backup")
    (tmp_path / "backup" / "data.sql").write_bytes(b"COPY cases FROM stdin;\n1\n\\.\n")
    (tmp_path / "backup" / "schema.sql").unlink()
    h = Harness(tmp_path, _backup_checklist()).start()
    try:
        h.wait_state("kept", "waiting")
        first = h.of_type(ItemChecked)[0]
        assert not first.passed
        assert first.reason == "data.sql differs from the manifest; schema.sql is missing"
        gate = h.engine.view().steps["kept"].gate
        assert gate is not None and gate.ticked == frozenset({1})
    finally:
        h.close()
