"""`make bench` runs every benchmark to its end: one that fails is reported with its reason, the others still run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.run_all import BENCHMARKS, ROWS, Benchmark, run_all, table_rows  # noqa: E402

FIGURES = """import json, sys
print("working ...", file=sys.stderr)
print(json.dumps({"NAME": {"speed": 3.5, "args": sys.argv[2:]}}))
"""
CRASHES = """import sys
print("connecting ...", file=sys.stderr)
sys.exit("boom: no database on 127.0.0.1:5432")
"""
PARTIAL = """import json
print(json.dumps({"NAME": {"speed": 1.0}}))
"""
HANGS = """import time
time.sleep(60)
"""
NO_JSON = """print("a table, not JSON")
"""

ROWS_OF_TESTS = [
    (name, key, f"{name} {key}", "")
    for name in ("good", "crashes", "partial", "hangs", "no_json", "last")
    for key in ("speed", "args")
]


def _bench(folder: Path, name: str, body: str, time_limit_s: float = 30) -> Benchmark:
    (folder / f"{name}.py").write_text(body.replace("NAME", name))
    return Benchmark(name, ("--small", "1"), time_limit_s, folder)


def test_one_failure_does_not_stop_the_others_and_each_says_why(tmp_path: Path) -> None:
    benches = [
        _bench(tmp_path, "good", FIGURES),
        _bench(tmp_path, "crashes", CRASHES),
        _bench(tmp_path, "partial", PARTIAL),
        _bench(tmp_path, "hangs", HANGS, time_limit_s=1),
        _bench(tmp_path, "no_json", NO_JSON),
        _bench(tmp_path, "last", FIGURES),
    ]
    outcomes = run_all(benches, ROWS_OF_TESTS, smoke=False)

    assert list(outcomes) == ["good", "crashes", "partial", "hangs", "no_json", "last"]
    assert outcomes["good"].failure == "" and outcomes["good"].figures["speed"] == 3.5
    assert outcomes["last"].failure == ""  # ran after four failures
    assert outcomes["crashes"].failure == "exit 1: boom: no database on 127.0.0.1:5432"
    assert outcomes["partial"].failure == "figures missing: args"
    assert outcomes["hangs"].failure == "no result within 1 s"
    assert outcomes["no_json"].failure.startswith("printed no figures under 'no_json'")

    table = {label: value for label, value, _ in table_rows(outcomes, ROWS_OF_TESTS)}
    assert table["good speed"] == 3.5
    assert table["crashes speed"] == "failed" and table["partial args"] == "failed"
    assert table["partial speed"] == 1.0  # what a benchmark did print is still shown


def test_smoke_passes_each_benchmark_its_quick_arguments(tmp_path: Path) -> None:
    bench = _bench(tmp_path, "good", FIGURES)
    assert run_all([bench], ROWS_OF_TESTS, smoke=True)["good"].figures["args"] == ["--small", "1"]
    assert run_all([bench], ROWS_OF_TESTS, smoke=False)["good"].figures["args"] == []


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda b: b.name)
def test_every_benchmark_in_the_table_is_a_script_with_rows(bench: Benchmark) -> None:
    assert bench.script.is_file()
    assert any(name == bench.name for name, _, _, _ in ROWS)
    assert "--json" in bench.script.read_text()


def test_every_row_belongs_to_a_benchmark() -> None:
    names = {b.name for b in BENCHMARKS}
    assert {name for name, _, _, _ in ROWS} == names
