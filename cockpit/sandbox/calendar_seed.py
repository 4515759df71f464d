"""The sandbox's v1 users who connected a Google Calendar: their refresh tokens in v1's
database, encrypted with a Fernet key as v1 kept them, and their calendars in the Calendar
stand-in, holding v1's events (each with "PERM Tracker" in its description, as v1 wrote them)
beside events of their own.

Everything is derived from the user's id and fixed sandbox secrets, so a demo that continues an
unfinished rehearsal finds the same tokens in PostgreSQL and the same calendars again.
"""

from __future__ import annotations

import base64
import hashlib

import psycopg
from cryptography.fernet import Fernet

from cockpit.sandbox.calendar import CalendarStandIn

# The key v1 encrypted its users' tokens with, in the sandbox: fixed, so a kept sandbox opens them.
FERNET_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"cutover cockpit sandbox: v1 calendar tokens").digest()).decode()
CLIENT_ID = "v1-sandbox.apps.googleusercontent.com"
CLIENT_SECRET = "sandbox-google-client-secret"
EVENTS_PER_USER = 6

TABLE = """
CREATE TABLE IF NOT EXISTS public.google_calendar_tokens (
    user_id uuid PRIMARY KEY REFERENCES auth.users (id),
    google_refresh_token text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


def refresh_token_of(user_id: str) -> str:
    return "1//sandbox-" + hashlib.sha256(f"refresh {user_id}".encode()).hexdigest()[:40]


def seed_calendars(dsn: str, calendar: CalendarStandIn) -> int:
    """About one user in seven connected a calendar; the number who did."""
    fernet = Fernet(FERNET_KEY.encode())
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A kept sandbox may be in the window, v1 read-only (a database default): this session,
        # the sandbox's own, writes anyway, and only when the table is not there yet.
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(TABLE)
        users = conn.execute(
            "SELECT id::text, coalesce(trim(email), '') FROM auth.users"
            " WHERE abs(hashtext(id::text)) % 7 = 0 ORDER BY id"
        ).fetchall()
        if not conn.execute("SELECT 1 FROM public.google_calendar_tokens LIMIT 1").fetchone():
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO public.google_calendar_tokens (user_id, google_refresh_token) VALUES (%s, %s)",
                    [(user_id, fernet.encrypt(refresh_token_of(user_id).encode()).decode()) for user_id, _ in users],
                )
    for index, (user_id, email) in enumerate(users):
        # The first removed v1's access from their Google account since: their token is revoked.
        calendar.add_user(email or user_id, refresh_token_of(user_id), revoked=index == 0)
        for n in range(EVENTS_PER_USER):
            calendar.add_event(email or user_id, f"PWD deadline {n + 1}", "Created by PERM Tracker. Case deadline.")
        calendar.add_event(email or user_id, "Dentist", "a user's own event")
    return len(users)
