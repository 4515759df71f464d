"""One SMTP session that hands messages over one at a time, and what the server said of each.

The standard library's smtplib speaks the protocol; this says what its answers mean for an
announcement. A reply of 5xx to a recipient or to the message is a refusal, final: the
recipient is listed with the reply. A 4xx is a deferral: the server asks to be tried later. A
connection that breaks while a message is handed over leaves it in doubt (the server may have
taken it before the break): the session reconnects and the message is handed over again with
the same Message-ID, which mail systems take for the same message.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

from cockpit.step_api import SmtpProblem, StepFailed, open_session, reply_of

Verdict = Literal["sent", "refused", "deferred"]


@dataclass(frozen=True)
class Delivery:
    verdict: Verdict
    reply: str = ""  # the server's reply to a refusal or a deferral: "550 5.1.1 no such user"


def _verdict(code: int, text: bytes | str) -> Delivery:
    return Delivery("refused" if 500 <= code < 600 else "deferred", reply_of(code, text))


class Outbox:
    """A connection to the SMTP server of an `smtp` connection, opened on first use."""

    def __init__(self, connection: Any, *, timeout: float = 30.0, log: Callable[[str], None] = print) -> None:
        self.connection = connection
        self.timeout = timeout
        self.log = log
        self.session: smtplib.SMTP | None = None
        self.reconnects = 0

    def open(self) -> None:
        try:
            self.session = open_session(self.connection, self.timeout)
        except SmtpProblem as exc:
            raise StepFailed(str(exc)) from None

    def hand_over(self, message: EmailMessage, sender: str, to: str) -> Delivery:
        """Hand one message over; a broken connection is reopened once and the message sent again."""
        for attempt in (1, 2):
            if self.session is None:
                self.open()
            assert self.session is not None
            try:
                self.session.send_message(message, from_addr=sender, to_addrs=[to])
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(to, (550, b"refused"))
                return _verdict(code, text)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                return _verdict(exc.smtp_code, exc.smtp_error)
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                self.drop()
                if attempt == 2:
                    raise StepFailed(
                        f"the SMTP server dropped the connection twice while a message was handed over: {exc}"
                    ) from None
                self.reconnects += 1
                self.log(
                    f"the SMTP connection broke ({exc or type(exc).__name__}); reconnecting, and the message"
                    " goes again with its Message-ID"
                )
            else:
                return Delivery("sent")
        raise AssertionError("unreachable")

    def drop(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            finally:
                self.session = None

    def close(self) -> None:
        if self.session is not None:
            try:
                self.session.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self.drop()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
