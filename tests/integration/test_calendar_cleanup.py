"""calendar.cleanup with Google's own client (google-api-python-client, google-auth) against the
Calendar API stand-in, the users and their Fernet-encrypted refresh tokens in real PostgreSQL:
every page listed, batches deleted, rate limits backed off, revoked tokens skipped, a bad key
refused before anything is deleted, a dry run, and a kill -9 in the middle, then a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import COCKPIT, subprocess_env
from cryptography.fernet import Fernet
from datapath import log_of
from fakes import HEADER, Harness, write_runbook

from cockpit.sandbox.calendar import CalendarStandIn, Faults

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key().decode()
CONNECTIONS = """
[connections.v1]
kind = "postgres"
dsn = "${TEST_DSN}"

[connections.google]
kind = "google_calendar"
api_endpoint = "${CALENDAR_API}"
token_uri = "${CALENDAR_TOKEN_URI}"
client_id = "v1-client.apps.googleusercontent.com"
client_secret = "${GOOGLE_CLIENT_SECRET}"
"""
CLEANUP = """
[[step]]
id = "calendar"
phase = "window"
kind = "calendar.cleanup"

[step.with]
connection = "google"
users_connection = "v1"
users_sql = "SELECT user_id, email, refresh_token FROM calendar_tokens ORDER BY email"
fernet_key = "${CALENDAR_TOKEN_KEY}"
private_property = "permtracker=v1"
page_size = 7
batch_size = 5
backoff = "50ms"
"""


def seed(dsn: str, calendar: CalendarStandIn, users: int, events: int, *, revoked: int = -1) -> int:
    """`users` users, each with `events` of v1's events and two of their own; user `revoked`'s
    token is revoked. The tokens go into v1's table encrypted. The number of v1's events."""
    fernet = Fernet(KEY.encode())
    rows = []
    for n in range(users):
        email = f"user{n}@example.com"
        user = calendar.add_user(email, revoked=n == revoked)
        for e in range(events):
            calendar.add_event(email, f"PWD deadline {e}", "PERM Tracker", {"permtracker": "v1"})
        calendar.add_event(email, "Dentist")
        calendar.add_event(email, "PERM Tracker talk", "not v1's", {"permtracker": "v2"})
        rows.append((f"u{n}", email, fernet.encrypt(user.refresh_token.encode()).decode()))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE calendar_tokens (user_id text, email text, refresh_token text)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO calendar_tokens VALUES (%s, %s, %s)", rows)
    return users * events


@pytest.fixture
def calendar() -> Iterator[CalendarStandIn]:
    server = CalendarStandIn().start()
    try:
        yield server
    finally:
        server.stop()


def env_of(dsn: str, calendar: CalendarStandIn, key: str = KEY) -> dict[str, str]:
    return {
        "TEST_DSN": dsn,
        "CALENDAR_API": calendar.url,
        "CALENDAR_TOKEN_URI": calendar.url + "token",
        "GOOGLE_CLIENT_SECRET": "v1-client-secret",
        "CALENDAR_TOKEN_KEY": key,
    }


def v1_events_left(calendar: CalendarStandIn) -> int:
    return sum(
        1
        for user in calendar.users.values()
        for event in user.events.values()
        if event.get("extendedProperties", {}).get("private", {}).get("permtracker") == "v1"
    )


def run(folder: Path, env: dict[str, str], body: str = CLEANUP, **options: object) -> Harness:
    h = Harness(folder, body, header=HEADER + CONNECTIONS, env=env, **options).start()
    h.settle(120)
    return h


def test_every_page_of_every_user_is_cleaned_in_batches_and_a_revoked_token_is_skipped(
    tmp_path: Path, pg_dsn: str, calendar: CalendarStandIn
) -> None:
    tagged = seed(pg_dsn, calendar, users=6, events=16, revoked=2)
    h = run(tmp_path, env_of(pg_dsn, calendar))
    try:
        assert h.state("calendar") == "succeeded", h.engine.step_runtime("calendar").reason
        assert v1_events_left(calendar) == 16  # the revoked user's, which no one can reach now
        assert all(len(calendar.remaining(u)) == 2 for u in calendar.users if u != "user2@example.com")
        assert calendar.counts["list"] == 5 * 3  # 16 events, 7 a page: three pages per user
        assert calendar.counts["batch"] == 5 * 4 and calendar.counts["delete"] == tagged - 16
        log = log_of(h, "calendar")
        assert "u***@example.com: the refresh token was revoked (invalid_grant); skipped" in log
        assert "5 of 6 users done, 80 events deleted; 1 with a revoked token (skipped), 0 failed" in log
        metrics = h.engine.view().metrics
        assert metrics["calendar.events_deleted"] == 80 and metrics["calendar.users_revoked"] == 1
        assert "v1-client-secret" not in log and KEY not in log
    finally:
        h.close()


def test_rate_limits_and_server_errors_are_backed_off_and_each_event_is_deleted_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    calendar = CalendarStandIn(Faults(rate=0.1, seed=3)).start()
    try:
        tagged = seed(pg_dsn, calendar, users=5, events=20)
        h = run(tmp_path, env_of(pg_dsn, calendar))
        try:
            assert h.state("calendar") == "succeeded", h.engine.step_runtime("calendar").reason
            assert v1_events_left(calendar) == 0 and calendar.counts["fault"] > 5
            assert sum(len(u.deleted) for u in calendar.users.values()) == tagged
            assert "were gone already" not in log_of(h, "calendar")  # nothing deleted twice
        finally:
            h.close()
    finally:
        calendar.stop()


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("not-a-key", "fernet_key is not a Fernet key"),
        (Fernet.generate_key().decode(), "the refresh tokens of 3 users cannot be decrypted with fernet_key"),
    ],
    ids=["not a key", "another key"],
)
def test_a_key_that_cannot_open_the_tokens_fails_before_anything_is_deleted(
    tmp_path: Path, pg_dsn: str, calendar: CalendarStandIn, key: str, problem: str
) -> None:
    tagged = seed(pg_dsn, calendar, users=3, events=4)
    h = run(tmp_path, env_of(pg_dsn, calendar, key))
    try:
        assert h.state("calendar") == "failed"
        assert problem in h.engine.step_runtime("calendar").reason
        assert key not in h.engine.step_runtime("calendar").reason
        assert v1_events_left(calendar) == tagged and calendar.counts["delete"] == 0
    finally:
        h.close()


def test_a_dry_run_lists_what_it_would_delete_and_deletes_nothing(
    tmp_path: Path, pg_dsn: str, calendar: CalendarStandIn
) -> None:
    tagged = seed(pg_dsn, calendar, users=2, events=9)
    h = run(tmp_path, env_of(pg_dsn, calendar), dry_run=True)
    try:
        assert h.state("calendar") == "succeeded", h.engine.step_runtime("calendar").reason
        assert v1_events_left(calendar) == tagged and calendar.counts["delete"] == 0
        assert "would delete 9 events ('PWD deadline 0', 'PWD deadline 1', 'PWD deadline 2', ...)" in log_of(
            h, "calendar"
        )
    finally:
        h.close()


def test_a_cleanup_killed_and_resumed_deletes_every_event_once_and_revisits_only_unfinished_users(
    tmp_path: Path, pg_dsn: str, calendar: CalendarStandIn
) -> None:
    tagged = seed(pg_dsn, calendar, users=12, events=20)
    calendar.latency = 0.02
    write_runbook(tmp_path, CLEANUP, HEADER + CONNECTIONS)
    env = subprocess_env(**env_of(pg_dsn, calendar))
    argv = [
        COCKPIT,
        "run",
        "runbook.toml",
        "--headless",
        "--rehearsal",
        "--speed",
        "100000",
        "--answer",
        "calendar=retry",
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while tagged - v1_events_left(calendar) < 70 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cleaned = [u for u, user in calendar.users.items() if len(user.events) == 2]  # all of v1's gone
    assert 2 <= len(cleaned) < 12
    lists_before = {u: calendar.counts[f"list {u}"] for u in calendar.users}
    finished = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert v1_events_left(calendar) == 0
    assert sum(len(u.deleted) for u in calendar.users.values()) == tagged  # each once: no 410 asked for
    # The users finished before the kill are not visited again (but the last of them, whose end
    # the kill may have beaten to the journal).
    visited_again = [u for u in cleaned if calendar.counts[f"list {u}"] > lists_before[u]]
    assert len(visited_again) <= 1, visited_again
