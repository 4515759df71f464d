"""The example go-live's plan: the bulk load runs the day before, so the window's critical path
goes through one sync of the day's changes instead of export, transform, import and resolve."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import COCKPIT, copy_example, subprocess_env


def test_the_window_moves_only_the_days_changes(tmp_path: Path) -> None:
    runbook = copy_example(tmp_path)
    done = subprocess.run(
        [COCKPIT, "plan", str(runbook)], capture_output=True, text=True, timeout=60, env=subprocess_env()
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "Critical path (*): read-only -> sync -> verify-counts -> dns-cutover -> dns-propagation -> smoke-auth"
        " -> open-v2 -> watch -> announce-live = 19m00s" in out
    )
    assert "Window: planned 19m00s of 30m00s (11m00s to spare)" in out
    phases = {m[0]: m[1] for m in re.findall(r"^== (.+?) at (T[-+]\w+)", out, re.M)}
    assert phases["Apply the schema's migrations"] == "T-2d" and phases["Bulk-load v2"] == "T-1d"
    window = out[out.index("== Maintenance window") : out.index("== Calendar cleanup")]
    for moved in ("export", "transform", "import", "resolve"):
        assert not re.search(rf"^ .{moved} ", window, re.M), moved
    assert re.search(r"^  import +T-23h57m .* transform, migrate$", out, re.M)
