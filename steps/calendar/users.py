"""The v1 users who connected a Google Calendar, with their refresh tokens readable.

The SQL that finds them is the runbook's (v1's schema is the team's). It returns `user_id`,
`email` and `refresh_token`; v1 may have stored the token encrypted with a Fernet key
(`cryptography`'s), given as `fernet_key`. Every token is decrypted before anything is deleted:
a key that is not a Fernet key, or a token it cannot open, fails the step having changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.step_api import StepContext, StepFailed


@dataclass(frozen=True)
class CalendarOwner:
    user_id: str
    email: str
    refresh_token: str


def read_owners(ctx: StepContext[Any], connection: str, sql: str, fernet_key: str | None) -> list[CalendarOwner]:
    from steps.postgres.sql import query_rows

    rows = query_rows(ctx, connection, sql, "users_sql", ("user_id", "email", "refresh_token"))
    opener = _opener(fernet_key)
    owners, unreadable = [], []
    for row in rows:
        token = row["refresh_token"]
        if token is None:
            continue
        try:
            owners.append(CalendarOwner(str(row["user_id"]), str(row["email"] or ""), opener(token)))
        except ValueError:
            unreadable.append(str(row["user_id"]))
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        raise StepFailed(
            f"the refresh tokens of {len(unreadable)} users cannot be decrypted with fernet_key ({shown}):"
            " the key is not the one v1 encrypted them with; nothing was deleted"
        )
    return owners


def _opener(fernet_key: str | None) -> Any:
    """Text or bytes from the database to a refresh token; ValueError for one that will not open."""

    def text(value: Any) -> str:
        return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)

    if fernet_key is None:
        return text
    from cryptography.fernet import Fernet, InvalidToken

    try:
        fernet = Fernet(fernet_key.strip().encode())
    except (ValueError, TypeError):
        raise StepFailed("fernet_key is not a Fernet key (32 url-safe base64-encoded bytes)") from None

    def decrypt(value: Any) -> str:
        try:
            return fernet.decrypt(text(value).encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise ValueError("cannot decrypt") from None

    return decrypt
