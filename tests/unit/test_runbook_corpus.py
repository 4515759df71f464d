"""Every broken runbook in tests/corpus reports exactly the problems its header expects.

A corpus file starts with `# expect: LINE: text` lines (errors) and `# warning: LINE: text`
lines; `cockpit check` must report each at that line, containing that text, and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cockpit import runbook_loader
from cockpit.registry import installed_kinds

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
_EXPECT = re.compile(r"^# (expect|warning): (\d+): (.*)$")


def _expectations(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    errors, warnings = [], []
    for line in path.read_text().splitlines():
        m = _EXPECT.match(line)
        if m:
            (errors if m.group(1) == "expect" else warnings).append((int(m.group(2)), m.group(3)))
    return errors, warnings


CASES = sorted(CORPUS.glob("*.toml"))


def test_the_corpus_has_at_least_thirty_broken_runbooks() -> None:
    assert len(CASES) >= 30
    assert all(_expectations(p)[0] for p in CASES), "every corpus file expects at least one error"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_runbook(path: Path) -> None:
    expected_errors, expected_warnings = _expectations(path)
    parsed, problems = runbook_loader.check(path, installed_kinds(), env={})
    assert parsed is None, "a runbook with errors must not load"
    errors = [(p.line, p.message) for p in problems if p.severity == "error"]
    warnings = [(p.line, p.message) for p in problems if p.severity == "warning"]
    for got, want, kind in ((errors, expected_errors, "error"), (warnings, expected_warnings, "warning")):
        unmatched = list(got)
        for line, text in want:
            match = next((g for g in unmatched if g[0] == line and text in g[1]), None)
            assert match is not None, f"expected {kind} at line {line} containing {text!r}; got {got}"
            unmatched.remove(match)
        assert not unmatched, f"unexpected {kind}s: {unmatched}"
    for problem in problems:
        assert str(problem).startswith(f"{path}:{problem.line}: ")
