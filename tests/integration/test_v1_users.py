"""The demo's v1 users (cockpit/sandbox/v1_users.py) against a real PostgreSQL: they change
cases and notifications while v1 takes writes, change nothing once it is read-only, and leave
v1's database when its API is scaled to zero (the decommission checks that nothing connects)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from cockpit.sandbox.web import v1_app

pytestmark = pytest.mark.integration

CHANGED_SINCE = (
    "SELECT (SELECT count(*) FROM public.cases WHERE updated_at > %(t)s)"
    " + (SELECT count(*) FROM public.notifications WHERE created_at > %(t)s OR read_at > %(t)s)"
    " + (SELECT abs(count(*) - %(n)s) FROM public.notifications)"
)


def _eventually(condition: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_v1s_users_write_until_read_only_and_leave_when_scaled_to_zero(perm_dsn: str) -> None:
    admin = psycopg.connect(perm_dsn, autocommit=True)
    app = v1_app(perm_dsn, users_at_work=True).start()
    try:

        def changed_since(t: object, notifications: int) -> int:
            row = admin.execute(CHANGED_SINCE, {"t": t, "n": notifications}).fetchone()
            return int(row[0]) if row else 0

        def now_and_notifications() -> tuple[object, int]:
            row = admin.execute("SELECT clock_timestamp(), (SELECT count(*) FROM public.notifications)").fetchone()
            assert row is not None
            return row[0], int(row[1])

        start = now_and_notifications()
        assert _eventually(lambda: changed_since(*start) >= 3), "v1's users changed nothing"

        database = admin.execute("SELECT current_database()").fetchone()
        assert database is not None
        admin.execute(f'ALTER DATABASE "{database[0]}" SET default_transaction_read_only = on')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = 'authenticator' AND datname = current_database()"
        )
        frozen = now_and_notifications()
        time.sleep(2.5)  # five of their attempts, each refused
        assert changed_since(*frozen) == 0

        def sessions() -> int:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'authenticator' AND datname = current_database()"
            ).fetchone()
            return int(row[0]) if row else 0

        assert _eventually(lambda: sessions() == 1)  # back, and refused
        app.scale(0)  # Render scaled v1's API to zero: its session ends (the server notices it in a moment)
        assert _eventually(lambda: sessions() == 0, within=5.0)
        time.sleep(1.5)  # its users' attempts open none
        assert sessions() == 0
    finally:
        app.stop()
        admin.close()
