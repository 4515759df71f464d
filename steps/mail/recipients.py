"""Who an announcement goes to: a list, or the rows of a SQL query, made into one list that
does not change between attempts.

Addresses are compared as v2 matches users, by `lower(trim(email))`: two accounts sharing an
address get one message (the first row's name). An address on the exclusion list (the
operator's decisions after the email audit, one address per line) gets none, and neither does
one that is not an address. The list is written once, at the first attempt, to a 0600 file in
the step's artifacts, with its digest in the checkpoint: a retry or a resume sends from the
same list in the same order, even if the users table changed meanwhile, so no one is skipped
or sent to twice by a list that moved under the send.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.step_api import StepFailed

# An address as a mail server takes it in RCPT TO: a local part and a domain with a dot, no
# spaces or angle brackets. What a server refuses beyond this is its reply, recorded per
# recipient.
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def is_address(text: str) -> bool:
    return bool(_ADDRESS.match(text))


def normalized(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


@dataclass(frozen=True)
class Selection:
    """The recipients, and who was left out and why."""

    recipients: list[Recipient]
    duplicates: int
    excluded: int
    invalid: list[str]


def select(rows: list[tuple[Any, Any]], excluded: set[str]) -> Selection:
    """(email, name) rows to recipients: deduplicated, exclusions and non-addresses left out."""
    seen: set[str] = set()
    recipients: list[Recipient] = []
    duplicates = dropped = 0
    invalid: list[str] = []
    for email, name in rows:
        if email is None:
            continue
        address = str(email).strip()
        key = normalized(address)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        if key in excluded:
            dropped += 1
        elif not is_address(address):
            invalid.append(address)
        else:
            recipients.append(Recipient(address, "" if name is None else str(name).strip()))
    return Selection(recipients, duplicates, dropped, invalid)


def read_exclusions(path: Path) -> set[str]:
    """One address per line; blank lines and `#` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StepFailed(f"cannot read the exclusion list {path.name}: {exc.strerror}") from None
    return {normalized(line.split("#", 1)[0]) for line in text.splitlines() if line.split("#", 1)[0].strip()}


def freeze(recipients: list[Recipient], path: Path) -> str:
    """Write the list (0600, then renamed into place); its sha256."""
    data = b"".join(json.dumps([r.email, r.name]).encode() + b"\n" for r in recipients)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return hashlib.sha256(data).hexdigest()


def thaw(path: Path, digest: str) -> list[Recipient]:
    """The list an earlier attempt froze; StepFailed if it is gone or changed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StepFailed(
            f"the recipient list of the earlier attempt ({path.name}) cannot be read: {exc.strerror};"
            " it fixes who has been sent to, so the send cannot continue without it"
        ) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise StepFailed(f"the recipient list of the earlier attempt ({path.name}) was changed since; not sending")
    return [Recipient(*json.loads(line)) for line in data.splitlines()]
