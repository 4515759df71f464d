"""The first-paint bench opens the project's runbook where it lies, with a journal of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.runbook_workspace import REFUSED_DSN, RunbookWorkspace  # noqa: E402


def test_the_runbook_opens_with_what_it_references_and_journals_in_the_workspace(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "migration").mkdir(parents=True)
    (project / "migration" / "mapping.toml").write_text("# the mapping\n")
    (project / ".cockpit").mkdir()
    (project / "runbook.toml").write_text(
        '[runbook]\nname = "x"\n[connections.v1]\nkind = "postgres"\ndsn = "${V1_DSN}"\n'
        '[connections.web]\nkind = "http"\nbase_url = "${WEB_URL}"\n'
        '[[step]]\nid = "a"\nwith = { token = "${TOKEN}" }\n'
    )
    with RunbookWorkspace(project / "runbook.toml") as workspace:
        assert workspace.runbook.read_text() == (project / "runbook.toml").read_text()
        assert not workspace.runbook.is_symlink()  # the journal goes beside the file it resolves to
        assert (workspace.folder / "migration" / "mapping.toml").read_text() == "# the mapping\n"
        assert not (workspace.folder / ".cockpit").exists()
        assert workspace.placeholder_env() == {
            "V1_DSN": REFUSED_DSN,
            "WEB_URL": "http://127.0.0.1:9",
            "TOKEN": "http://127.0.0.1:9",
        }
    assert not workspace.folder.exists()
    assert (project / "migration" / "mapping.toml").exists()  # removing the links left the project


def test_the_project_runbook_has_every_variable_it_needs_and_is_sound() -> None:
    with RunbookWorkspace(ROOT / "runbook.toml") as workspace:
        env = {"PATH": "/usr/bin:/bin", **workspace.placeholder_env()}
        cockpit = Path(sys.executable).parent / "cockpit"
        result = subprocess.run(
            [str(cockpit), "check", workspace.runbook.name],
            cwd=workspace.folder,
            env=env,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not set" not in result.stdout + result.stderr
    assert "sound" in result.stdout
