"""`email.send`: an announcement to every user, by SMTP, each recipient's outcome journaled.

Before the real send the operator sees the first message as it will go out and how many it
goes to, a test message can go to the operator's own address first, and the operator says go.
Then one message at a time, at no more than `rate` a second: each outcome (sent; refused, with
the server's reply; deferred) is in the checkpoint before the next message is handed over, so
a retry, a crash or a kill -9 continues at the first recipient without an outcome and never
sends to anyone before it again. That recipient's message may have been taken by the server in
the instant before the stop; it goes again with the same Message-ID, which mail systems take
for the same message. Deferred recipients are tried again after the list; refused ones are
listed and fail the step only past `max_refused`. A dry run writes every message as an .eml
file instead of sending it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, model_validator

from cockpit.step_api import (
    ConnectionRef,
    Duration,
    Effect,
    Step,
    StepContext,
    StepFailed,
    StepParams,
    format_duration,
    private_dir,
)
from steps.mail.recipients import Recipient, freeze, is_address, read_exclusions, select, thaw
from steps.mail.template import RECIPIENT_FIELDS, WINDOW_FIELDS, TemplateProblem, Window, check_template, render
from steps.postgres.audit import mask

if TYPE_CHECKING:
    from email.message import EmailMessage

    from steps.mail.outbox import Delivery, Outbox

LIST_FILE = "recipients.jsonl"


class EmailParams(StepParams):
    connection: Annotated[str, ConnectionRef("smtp")]
    subject: str = Field(description="a template: {name}, {window_start}, ...")
    body: str | None = Field(default=None, description="the body as a template; or body_file")
    body_file: str | None = Field(default=None, description="a UTF-8 file holding the body template")
    to: list[str] = Field(default_factory=list, description="recipients, when not from recipients_sql")
    recipients_sql: str | None = Field(default=None, description="returns an email column, and a name column if any")
    recipients_connection: Annotated[str | None, ConnectionRef("postgres")] = None
    exclude_file: str | None = Field(default=None, description="addresses not to write to, one per line")
    values: dict[str, str] = Field(default_factory=dict, description="more fields for the templates")
    name_fallback: str = Field(default="there", description="{name} of a recipient without one: Hi there,")
    timezone: str | None = Field(default=None, description='the zone the window is told in, e.g. "America/New_York"')
    test_to: str | None = Field(default=None, description="the operator's address: a test message goes there first")
    confirm: bool = Field(default=True, description="ask the operator after the preview, before sending")
    rate: float | None = Field(default=None, gt=0, description="messages per second, below the connection's rate")
    max_refused: int = Field(default=10, ge=0, description="refused recipients the send tolerates")
    deferred_retries: int = Field(default=2, ge=0, le=10)
    deferred_pause: Duration = Field(
        default=timedelta(minutes=1), description="between passes over deferred recipients"
    )

    @model_validator(mode="after")
    def _sound(self, info: ValidationInfo) -> EmailParams:
        if (self.body is None) == (self.body_file is None):
            raise ValueError("give the body as either `body` or `body_file`")
        if bool(self.to) == (self.recipients_sql is not None):
            raise ValueError("give the recipients as either `to` or `recipients_sql`")
        if self.recipients_sql is not None and self.recipients_connection is None:
            raise ValueError("recipients_sql needs recipients_connection, the postgres connection it runs on")
        for address in [*self.to, *([self.test_to] if self.test_to else [])]:
            if "${" not in address and not is_address(address.strip()):
                raise ValueError(f"{address!r} is not an email address")
        if self.timezone is not None:
            zone_of(self.timezone)
        known = {*RECIPIENT_FIELDS, *WINDOW_FIELDS, *self.values}
        check_template(self.subject, "subject", known)
        base = (info.context or {}).get("base_dir")
        if self.body is not None:
            check_template(self.body, "body", known)
        elif base is not None and self.body_file is not None:
            check_template(read_body(Path(base), self.body_file), f"body_file {self.body_file}", known)
        return self


def zone_of(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not a zone name such as America/New_York") from None


def read_body(base: Path, name: str) -> str:
    try:
        return (base / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateProblem(f"body_file {name}: no such file") from None
    except UnicodeDecodeError:
        raise TemplateProblem(f"body_file {name}: not UTF-8 text") from None
    except OSError as exc:
        raise TemplateProblem(f"body_file {name}: {exc.strerror}") from None


class EmailStep(Step[EmailParams]):
    """Sends a templated message to each recipient; notifies the world."""

    kind = "email.send"
    effect = Effect.NOTIFY
    Params = EmailParams
    resumes = True
    dry_runs = True

    def describe(self, params: EmailParams) -> str:
        who = f"{len(params.to)} addresses" if params.to else f"the users of {params.recipients_connection!r}"
        return f"email {params.subject!r} to {who} through {params.connection!r}"

    def run(self, ctx: StepContext[EmailParams]) -> None:
        # The mail modules are imported here, not when the cockpit loads every kind at start.
        import email.policy
        from email.message import EmailMessage
        from email.utils import formataddr, formatdate

        from steps.mail.outbox import Outbox

        # The standard library folds a subject such as "[TEST] ..." into an empty first line,
        # which some readers show as a leading space: a header is folded only past SMTP's limit.
        unfolded = email.policy.SMTP.clone(max_line_length=998)
        params = ctx.params
        connection = ctx.connection(params.connection)
        recipients = self._recipients(ctx)
        zone = zone_of(params.timezone) if params.timezone else (ctx.t0.tzinfo or UTC)
        fields = {**Window(ctx.runbook_name, ctx.t0, ctx.window, zone).fields(), **params.values}
        body = params.body if params.body is not None else read_body(ctx.base_dir, params.body_file or "")
        digest = ctx.checkpoint["list"]["sha256"]

        def message(index: int, recipient: Recipient, to: str | None = None, prefix: str = "") -> EmailMessage:
            values = {**fields, "email": recipient.email, "name": recipient.name or params.name_fallback}
            built = EmailMessage(policy=unfolded)
            built["From"] = connection.sender
            built["To"] = formataddr((recipient.name, to or recipient.email))
            built["Subject"] = prefix + render(params.subject, values)
            built["Date"] = formatdate(time.time(), usegmt=True)
            key = f"{ctx.step_id}\n{digest}\n{index}\n{to or recipient.email}".encode()
            domain = connection.sender.rpartition("@")[2].strip(">") or "cockpit.invalid"
            built["Message-ID"] = f"<{hashlib.sha256(key).hexdigest()[:32]}@{domain}>"
            built.set_content(render(body, values))
            return built

        if not recipients:
            ctx.log("no recipients: nothing to send")
            return
        if ctx.dry_run:
            self._write_eml(ctx, recipients, message)
            return
        with Outbox(connection, log=ctx.log) as outbox:
            if not ctx.checkpoint.get("confirmed"):
                self._preview(ctx, outbox, recipients, message)
            self._send_all(ctx, outbox, recipients, message)

    # -- the list ----------------------------------------------------------------------------------

    def _recipients(self, ctx: StepContext[EmailParams]) -> list[Recipient]:
        params = ctx.params
        path = ctx.artifacts / LIST_FILE
        saved = ctx.checkpoint.get("list")
        if saved is not None:
            return thaw(path, saved["sha256"])
        excluded = read_exclusions(ctx.base_dir / params.exclude_file) if params.exclude_file else set()
        if params.recipients_sql is not None:
            rows = self._rows(ctx, params.recipients_connection or "", params.recipients_sql)
        else:
            rows = [(address, None) for address in params.to]
        chosen = select(rows, excluded)
        for address in chosen.invalid:
            ctx.log(f"not an email address, left out: {mask(address)}")
        ctx.log(
            f"{len(chosen.recipients):,} recipients; left out: {chosen.duplicates:,} duplicate addresses,"
            f" {chosen.excluded:,} on the exclusion list, {len(chosen.invalid):,} not addresses"
        )
        digest = freeze(chosen.recipients, path)
        ctx.checkpoint["list"] = {"sha256": digest, "count": len(chosen.recipients)}
        return chosen.recipients

    @staticmethod
    def _rows(ctx: StepContext[EmailParams], connection: str, sql: str) -> list[tuple[Any, Any]]:
        from steps.postgres.sql import query_rows

        return [
            (row["email"], row.get("name")) for row in query_rows(ctx, connection, sql, "recipients_sql", ("email",))
        ]

    # -- before the send ---------------------------------------------------------------------------

    def _preview(
        self, ctx: StepContext[EmailParams], outbox: Outbox, recipients: list[Recipient], message: Any
    ) -> None:
        params = ctx.params
        first = message(0, recipients[0])
        ctx.log(f"preview of the first of {len(recipients):,} messages, to {mask(recipients[0].email)}:")
        ctx.log_lines([f"  Subject: {first['Subject']}", *(f"  {line}" for line in first.get_content().splitlines())])
        tested = ""
        if params.test_to:
            test = message(0, recipients[0], to=params.test_to.strip(), prefix="[TEST] ")
            delivery = outbox.hand_over(test, ctx.connection(params.connection).sender, params.test_to.strip())
            if delivery.verdict != "sent":
                raise StepFailed(f"the test message to {mask(params.test_to)} was {delivery.verdict}: {delivery.reply}")
            tested = f"; a test message went to {params.test_to.strip()}"
            ctx.log(f"test message sent to {params.test_to.strip()}")
        if params.confirm and not ctx.ask(
            f"Send {first['Subject']!r} to {len(recipients):,} recipients? (the first message is in the log{tested})"
        ):
            raise StepFailed("the operator did not confirm the send")
        ctx.checkpoint["confirmed"] = True

    def _write_eml(self, ctx: StepContext[EmailParams], recipients: list[Recipient], message: Any) -> None:
        folder = private_dir(ctx.artifacts / "eml")
        for index, recipient in enumerate(recipients):
            ctx.raise_if_cancelled()
            path = folder / f"{index + 1:06d}.eml"
            path.write_bytes(bytes(message(index, recipient)))
            path.chmod(0o600)
            ctx.progress(index + 1, len(recipients), "messages", "written")
        ctx.log(f"dry run: {len(recipients):,} messages written to {folder}, none sent")

    # -- the send ----------------------------------------------------------------------------------

    def _send_all(
        self, ctx: StepContext[EmailParams], outbox: Outbox, recipients: list[Recipient], message: Any
    ) -> None:
        params = ctx.params
        sender = ctx.connection(params.connection).sender
        state = ctx.checkpoint
        start = int(state.get("next", 0))
        refused: dict[str, str] = dict(state.get("refused", {}))  # index -> the server's reply
        deferred: dict[str, str] = dict(state.get("deferred", {}))
        sent = int(state.get("sent", 0))
        if start:
            ctx.log(
                f"continuing at message {start + 1:,} of {len(recipients):,} ({sent:,} sent before); the message"
                " to that recipient may have gone out before the stop, so it goes again with the same Message-ID"
            )
        limit = float(ctx.connection(params.connection).rate)
        pause = 1.0 / (min(params.rate, limit) if params.rate else limit)
        due = time.monotonic()

        def deliver(index: int) -> Delivery:
            nonlocal due
            ctx.raise_if_cancelled()
            wait = due - time.monotonic()
            if wait > 0 and ctx.cancel.wait(wait):  # the rate is in real seconds, whatever the clock
                ctx.raise_if_cancelled()
            due = max(due, time.monotonic()) + pause
            delivery = outbox.hand_over(message(index, recipients[index]), sender, recipients[index].email)
            if delivery.verdict != "sent":
                ctx.log(f"{mask(recipients[index].email)}: {delivery.verdict}: {delivery.reply}")
            return delivery

        for index in range(start, len(recipients)):
            delivery = deliver(index)
            if delivery.verdict == "sent":
                sent += 1
            else:
                (refused if delivery.verdict == "refused" else deferred)[str(index)] = delivery.reply
            state.update_all({"next": index + 1, "sent": sent, "refused": refused, "deferred": deferred})
            ctx.progress(index + 1, len(recipients), "messages", "sent")
            if len(refused) > params.max_refused:
                raise StepFailed(f"{len(refused):,} recipients refused, more than max_refused = {params.max_refused}")
        for _ in range(params.deferred_retries):
            if not deferred:
                break
            ctx.log(f"{len(deferred):,} deferred; trying them again in {format_duration(params.deferred_pause)}")
            ctx.sleep(params.deferred_pause.total_seconds())
            for key in sorted(deferred, key=int):
                delivery = deliver(int(key))
                if delivery.verdict == "sent":
                    sent += 1
                    del deferred[key]
                elif delivery.verdict == "refused":
                    del deferred[key]
                    refused[key] = delivery.reply
                else:
                    deferred[key] = delivery.reply
                state.update_all({"sent": sent, "refused": refused, "deferred": deferred})
        self._summarize(ctx, recipients, sent, refused, deferred)

    @staticmethod
    def _summarize(
        ctx: StepContext[EmailParams],
        recipients: list[Recipient],
        sent: int,
        refused: dict[str, str],
        deferred: dict[str, str],
    ) -> None:
        ctx.metric("email.sent", sent)
        ctx.metric("email.refused", len(refused))
        ctx.metric("email.deferred", len(deferred))
        path = ctx.artifacts / "undelivered.tsv"
        lines = [
            f"{recipients[int(i)].email}\trefused\t{r}" for i, r in sorted(refused.items(), key=lambda x: int(x[0]))
        ]
        lines += [
            f"{recipients[int(i)].email}\tdeferred\t{r}" for i, r in sorted(deferred.items(), key=lambda x: int(x[0]))
        ]
        if lines:
            path.write_text("".join(line + "\n" for line in lines))
            path.chmod(0o600)
        where = f"; the undelivered are listed in {path}" if lines else ""
        ctx.log(f"{sent:,} of {len(recipients):,} sent, {len(refused):,} refused, {len(deferred):,} deferred{where}")
        if len(refused) > ctx.params.max_refused:
            raise StepFailed(f"{len(refused):,} recipients refused, more than max_refused = {ctx.params.max_refused}")
        if deferred:
            raise StepFailed(
                f"{len(deferred):,} recipients still deferred after {ctx.params.deferred_retries} more tries;"
                " retry the step to try them again"
            )
