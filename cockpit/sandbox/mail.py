"""The sandbox's mail server: aiosmtpd, a real SMTP server, on 127.0.0.1, keeping a mailbox.

Every message it accepts is written to the mailbox folder as `<n>.eml` (0600: announcements
hold users' names), with its envelope recipients in `<n>.rcpt`, before the server answers 250:
a test that kills the cockpit in the middle of a send counts what arrived from the files. A
login can be required (AUTH PLAIN and LOGIN, over the plain connection: this is loopback), and
recipients can be refused (550) or deferred (450) by address, as a real server does to an
address that does not exist or to one it greylists.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cockpit.sandbox.loopback import free_port

# A login over a plain connection is what this loopback server is for: aiosmtpd's warnings about
# it (and its per-connection log) would print over the cockpit's screen.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning)
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
logging.getLogger("mail.log").addHandler(logging.NullHandler())
logging.getLogger("mail.log").propagate = False


@dataclass
class Arrival:
    """One message the server accepted."""

    recipients: list[str]
    message: Message

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class _Handler:
    mailbox: Path
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: Iterable[int] = field(default_factory=lambda: itertools.count(1))

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        key = address.lower()
        if key in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if key in self.defer:
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            number = next(iter(self.numbers))
            stem = self.mailbox / f"{number:07d}"
            _write_private(stem.with_suffix(".rcpt"), "".join(r + "\n" for r in envelope.rcpt_tos).encode())
            _write_private(stem.with_suffix(".eml"), envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class SandboxMailServer:
    """`SandboxMailServer(folder, username="ops", password="...").start()`; `.stop()` after."""

    def __init__(
        self,
        mailbox: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        refuse: Iterable[str] = (),
        defer: Iterable[str] = (),
    ) -> None:
        self.mailbox = mailbox
        mailbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = sorted(mailbox.glob("*.eml"))
        first = int(existing[-1].stem) + 1 if existing else 1
        self.handler = _Handler(
            mailbox, {a.lower() for a in refuse}, {a.lower() for a in defer}, numbers=itertools.count(first)
        )
        self.username = username
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        self._controller: Controller | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = data.login.decode() == self.username and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)  # the server answers 235 or 535 itself

    def start(self) -> SandboxMailServer:
        self.port = free_port()
        options: dict[str, Any] = {}
        if self.username is not None:
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(self.handler, hostname=self.host, port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, address: str) -> None:
        self.handler.refuse.add(address.lower())

    def defer(self, address: str, *, on: bool = True) -> None:
        (self.handler.defer.add if on else self.handler.defer.discard)(address.lower())

    def arrivals(self) -> list[Arrival]:
        """What arrived, in order, read from the mailbox folder."""
        found = []
        for path in sorted(self.mailbox.glob("*.eml")):
            recipients = path.with_suffix(".rcpt").read_text().split()
            found.append(Arrival(recipients, email.message_from_bytes(path.read_bytes(), policy=email.policy.default)))
        return found

    @property
    def env(self) -> dict[str, str]:
        # Loopback takes messages as fast as they come: no provider's sending limit to respect.
        env = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_RATE": "1000"}
        if self.username is not None:
            env |= {"SMTP_USERNAME": self.username, "SMTP_PASSWORD": self.password or ""}
        return env
