"""Which SQLite the Convex stand-in's store runs on, and how its connections are set up.

Documents are stored as SQLite's JSONB where SQLite is 3.45 or later (pysqlite3-binary bundles
one; Debian 12's is 3.40): a function that reads a field of every document (verification) then
walks the stored binary instead of parsing a kilobyte of text per document. Older SQLite
stores text; the SQL is the same.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import ModuleType


def best_engine() -> ModuleType:
    """The SQLite module to store with: a bundled SQLite that has JSONB, else Python's own."""
    try:
        from pysqlite3 import dbapi2  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return sqlite3
    engine: ModuleType = dbapi2
    if not has_jsonb(engine):
        return sqlite3
    _without_memory_statistics()
    return engine


_statistics_lock = threading.Lock()
_statistics_off: bool | None = None
SQLITE_CONFIG_MEMSTATUS = 9


def _without_memory_statistics() -> bool:
    """Turn off the bundled SQLite's memory statistics, once, before it opens anything.

    With them on (SQLite's default unless built with SQLITE_DEFAULT_MEMSTATUS=0, as SQLite's own
    advice for speed says), every allocation takes one process-wide mutex; two threads reading
    fields of every document then spend markedly more CPU than one alone (bench/README.md has
    the figures). The module initialised SQLite on import, so this shuts it down,
    configures and starts it again: legal only while no connection of that library is open,
    and nothing but this store opens one. Python's own sqlite3 is a different library."""
    global _statistics_off
    with _statistics_lock:
        if _statistics_off is None:
            import ctypes

            from pysqlite3 import _sqlite3  # type: ignore[import-untyped,import-not-found,unused-ignore]

            library = ctypes.CDLL(_sqlite3.__file__)
            library.sqlite3_memory_used.restype = ctypes.c_int64
            if library.sqlite3_memory_used() != 0:  # something holds SQLite memory: a connection is open
                _statistics_off = False
            else:
                _statistics_off = (
                    library.sqlite3_shutdown() == 0
                    and library.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
                )
                library.sqlite3_initialize()
        return _statistics_off


def has_jsonb(engine: ModuleType) -> bool:
    return tuple(engine.sqlite_version_info) >= (3, 45)


def connect(engine: ModuleType, path: Path, cache_kib: int) -> sqlite3.Connection:
    db: sqlite3.Connection = engine.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    # Whole-table scans (verification) and id lookups read the file again and again: a large
    # page cache and a memory map keep them out of read() calls. A stand-in's trade.
    db.execute(f"PRAGMA cache_size=-{cache_kib}")
    db.execute("PRAGMA mmap_size=4294967296")
    return db
