"""A trigger's firing told outside the screen: by mail to the addresses of its `notify`, and by
POST to its webhook, so that an alert reaches someone who is not watching the cockpit.

Delivery runs on its own thread and never holds up the run: a mail server or a webhook that is
down costs its timeout, once per attempt, and is reported as an alert of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cockpit import __version__
from cockpit.runbook import Notify

ATTEMPTS = 3
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Notice:
    """What fired, as the screen says it."""

    runbook: str
    trigger: str
    label: str
    action: str
    reason: str
    at: str  # the run's clock, ISO

    def subject(self) -> str:
        return f"[cockpit] {self.runbook}: {self.label} ({self.action})"

    def text(self) -> str:
        what = {"alert": "alerts", "pause": "paused the run", "rollback": "started the rollback"}[self.action]
        return (
            f"Trigger {self.trigger!r} of {self.runbook!r} fired at {self.at} and {what}.\n\n"
            f"{self.reason}\n\nThe cockpit's screen and `cockpit status` show the run.\n"
        )

    def json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "trigger": self.trigger,
            "title": self.label,
            "action": self.action,
            "reason": self.reason,
            "at": self.at,
            "text": f"{self.subject()}: {self.reason}",  # what Slack-style webhooks show
        }


def deliver(notice: Notice, notify: Notify, connection: Any | None, sleep: Any = time.sleep) -> list[str]:
    """Send the notice everywhere `notify` says; one line per destination saying how it went,
    failures starting with "could not"."""
    outcomes: list[str] = []
    if notify.email and connection is not None:
        outcomes.append(_mail(notice, notify.email, connection, sleep))
    if notify.webhook is not None:
        outcomes.append(_post(notice, notify.webhook, sleep))
    return outcomes


def _mail(notice: Notice, addresses: list[str], connection: Any, sleep: Any) -> str:
    # Imported when a trigger fires, not when the cockpit starts: its first paint waits for none.
    import smtplib
    from email.message import EmailMessage
    from email.utils import formatdate

    from cockpit.smtp import SmtpProblem, open_session, reply_of

    message = EmailMessage()
    message["From"] = connection.sender
    message["To"] = ", ".join(addresses)
    message["Subject"] = notice.subject()
    message["Date"] = formatdate(usegmt=True)
    message.set_content(notice.text())
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with open_session(connection, TIMEOUT_S) as session:
                refused = session.send_message(message)
            delivered = len(addresses) - len(refused)
            return f"mailed to {delivered} of {len(addresses)} addresses" + (
                f"; refused: {', '.join(refused)}" if refused else ""
            )
        except SmtpProblem as exc:
            problem = str(exc)
        except smtplib.SMTPRecipientsRefused as exc:
            return f"could not mail: every address was refused ({reply_of(*next(iter(exc.recipients.values())))})"
        except (OSError, smtplib.SMTPException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if attempt < ATTEMPTS:
            sleep(2**attempt)
    return f"could not mail the alert: {problem}"


def _post(notice: Notice, url: str, sleep: Any) -> str:
    import httpx

    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            answer = httpx.post(
                url, json=notice.json(), timeout=TIMEOUT_S, headers={"User-Agent": f"cutover-cockpit/{__version__}"}
            )
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if answer.is_success:
                return f"posted to the webhook ({answer.status_code})"
            problem = f"the webhook answered HTTP {answer.status_code}"
            if answer.status_code < 500 and answer.status_code != 429:
                break  # the webhook refuses this request: asking again changes nothing
        if attempt < ATTEMPTS:
            sleep(2**attempt)
    return f"could not post to the webhook: {problem}"
