"""v1's users at work, for the demo: while v1 takes writes, every half second one of them adds,
changes or closes a case, or reads, gets or dismisses a notification, as v1's API does on their
behalf (the `authenticated` role, through its `authenticator` session). v1's read-only refuses
them as it refuses real users, so the window's sync has a day's changes to move and nothing
changes under the verifications. Scaled to zero (Render), the API and its session are gone.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg

# Each a single statement (one transaction under autocommit) that answers a row when it changed
# one; updated_at is set as v1's app sets it, with the database's clock.
ACTIONS = (
    "UPDATE public.cases SET progress_status = 'in review', notes = 'updated by its user', updated_at = now()"
    " WHERE id = (SELECT id FROM public.cases WHERE deleted_at IS NULL ORDER BY random() LIMIT 1) RETURNING 1",
    "INSERT INTO public.cases (id, user_id, employer_name, case_status, pwd_filing_date, created_at, updated_at)"
    " SELECT gen_random_uuid(), user_id, 'Northwind Traders', 'pwd', current_date, now(), now()"
    " FROM public.cases ORDER BY random() LIMIT 1 RETURNING 1",
    "UPDATE public.cases SET deleted_at = now(), updated_at = now()"
    " WHERE id = (SELECT id FROM public.cases WHERE deleted_at IS NULL ORDER BY random() LIMIT 1) RETURNING 1",
    "UPDATE public.notifications SET is_read = true, read_at = now()"
    " WHERE id = (SELECT id FROM public.notifications WHERE NOT is_read ORDER BY random() LIMIT 1) RETURNING 1",
    "INSERT INTO public.notifications (id, user_id, case_id, type, title, created_at)"
    " SELECT gen_random_uuid(), user_id, id, 'deadline', 'PWD expires in 30 days', now()"
    " FROM public.cases WHERE deleted_at IS NULL ORDER BY random() LIMIT 1 RETURNING 1",
    "DELETE FROM public.notifications"
    " WHERE id = (SELECT id FROM public.notifications WHERE is_read ORDER BY random() LIMIT 1) RETURNING 1",
)


class UsersAtWork:
    def __init__(self, query: Callable[[str, str], Any], every: float = 0.5) -> None:
        """`query(sql, role)` runs a statement as v1's API does (and refuses while the API is
        scaled to zero)."""
        self._query = query
        self._every = every
        self._stop = threading.Event()
        self._random = random.Random(5)
        self._thread = threading.Thread(target=self._work, name="v1-users", daemon=True)
        self.changed = 0
        self.refused = 0

    def start(self) -> UsersAtWork:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _work(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if self._query(self._random.choice(ACTIONS), "authenticated") is not None:
                    self.changed += 1
            except psycopg.errors.ReadOnlySqlTransaction:
                self.refused += 1  # the maintenance page, for a real user
            except (psycopg.Error, ScaledToZero):
                pass  # v1 restarting, gone, or the sandbox stopping: the next tick tries again


class ScaledToZero(RuntimeError):
    """v1's API has no instance: nobody reaches its database through it."""
