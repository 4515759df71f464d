from __future__ import annotations

import tomllib

from cockpit.tomlpos import scan

DOC = '''# comment
[runbook]
name = "x"   # trailing comment
t0 = 2026-12-05T23:00:00-05:00

[connections.v1]
kind = "postgres"
"quoted key" = 'literal'

[[step]]
id = "a"
with = { connection = "v1", roles = ["x", "y"], nested = { deep = 1 } }

[[step]]
id = "b"
needs = [
  "a",   # first
  "c",
]
sql = """
SELECT 1;
-- "quotes" and [brackets] inside
"""
[step.with]
connection = "v1"
dotted.key = 3

[[trigger]]
id = "t"
when.step = "a"
'''


def test_lines_of_keys_tables_and_array_elements() -> None:
    tomllib.loads(DOC)  # the scanner only ever sees valid TOML
    lines = scan(DOC)
    assert lines.line_of(("runbook", "name")) == 3
    assert lines.line_of(("runbook", "t0")) == 4
    assert lines.line_of(("connections", "v1")) == 6
    assert lines.line_of(("connections", "v1", "quoted key")) == 8
    assert lines.line_of(("step", 0)) == 10
    assert lines.line_of(("step", 0, "with", "roles", 1)) == 12
    assert lines.line_of(("step", 0, "with", "nested", "deep")) == 12
    assert lines.line_of(("step", 1, "needs", 0)) == 17
    assert lines.line_of(("step", 1, "needs", 1)) == 18
    assert lines.line_of(("step", 1, "sql")) == 20
    assert lines.line_of(("step", 1, "with")) == 24
    assert lines.line_of(("step", 1, "with", "connection")) == 25
    assert lines.line_of(("step", 1, "with", "dotted", "key")) == 26
    assert lines.line_of(("trigger", 0, "when", "step")) == 30


def test_unknown_paths_fall_back_to_the_nearest_parent() -> None:
    lines = scan(DOC)
    assert lines.line_of(("step", 1, "with", "nope")) == 24
    assert lines.line_of(("step", 7)) == 10  # the first [[step]]
    assert lines.line_of(("nowhere",)) == 1
