"""The journal's tables, and the changes that bring an older journal up to date.

A journal outlives the cockpit that wrote it (a run is continued by a newer cockpit after an
upgrade), so a column added later is added to an existing file when it is opened.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    runbook_text TEXT NOT NULL,
    mode TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    created_wall REAL NOT NULL,
    ended_wall REAL,
    state TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    clock TEXT,
    rollback TEXT,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    retries_left INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    started_clock TEXT,
    ended_clock TEXT,
    started_wall REAL,
    ended_wall REAL,
    completed_seq INTEGER,
    operator_started INTEGER NOT NULL DEFAULT 0,
    not_run INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    wall REAL NOT NULL,
    clock TEXT,
    type TEXT NOT NULL,
    step TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS logs (
    run_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    n INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    wall REAL NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run_id, step, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    data TEXT NOT NULL,
    wall REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS progress (
    run_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    label TEXT NOT NULL,
    done REAL NOT NULL,
    total REAL,
    unit TEXT NOT NULL,
    wall REAL NOT NULL,
    PRIMARY KEY (run_id, step, label)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    step TEXT NOT NULL,
    wall REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS triggers (
    run_id INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    fired_wall REAL NOT NULL,
    fired_clock TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, trigger)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    wall REAL NOT NULL,
    clock TEXT,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    step TEXT,
    detail TEXT NOT NULL
);
"""

# (table, column, declaration): columns added after a journal's tables were first created.
ADDED_COLUMNS = [
    # The wall time of the run's last clock save (every second while a process drives it): the
    # moment an interrupted step was last seen running.
    ("runs", "heartbeat_wall", "REAL"),
]


def create_or_upgrade(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
