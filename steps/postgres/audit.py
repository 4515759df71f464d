"""`postgres.audit_emails`: the pre-migration email audit of the migration research.

v2 matches users by `lower(trim(email))`, so before the window the operator must know: how many
users there are, how many distinct normalized emails, how many have none, which emails are
shared by several accounts (each group needs a manual decision), and how many are unverified.
The step writes the full report (a 0600 file: it holds addresses) and logs the figures with
the addresses masked; duplicates or missing emails fail the step or warn, as it says.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams, private_dir
from steps.postgres.sql import CancelWatch, connect, quote_table

SHOWN_GROUPS = 10


class AuditParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    table: str = "auth.users"
    id_column: str = "id"
    email_column: str = "email"
    verified_column: str | None = Field(default="email_confirmed_at", description="NULL here means unverified")
    report: str = Field(description="the report file to write, e.g. reports/email-audit.md")
    on_duplicates: Literal["fail", "warn"] = "fail"
    on_missing: Literal["fail", "warn"] = "warn"
    on_unverified: Literal["fail", "warn"] = "warn"


def mask(email: str) -> str:
    """An address with its local part hidden: j***@example.com."""
    local, at, domain = email.partition("@")
    return (local[:1] + "***" + at + domain) if at else email[:1] + "***"


class AuditStep(Step[AuditParams]):
    """Reads the users table and writes a report; a probe."""

    kind = "postgres.audit_emails"
    effect = Effect.PROBE
    Params = AuditParams

    def describe(self, params: AuditParams) -> str:
        return f"audit the emails of {params.table} on {params.connection!r}; report to {params.report}"

    def run(self, ctx: StepContext[AuditParams]) -> None:
        params = ctx.params
        from psycopg import sql

        table = sql.SQL(quote_table(params.table))
        email = sql.Identifier(params.email_column)
        normalized = sql.SQL("lower(trim({}))").format(email)
        unverified = (
            sql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(params.verified_column))
            if params.verified_column
            else sql.SQL("0")
        )
        report_path = ctx.base_dir / params.report
        if not report_path.parent.exists():  # a new folder for the report: private, as the report is
            private_dir(report_path.parent)
        partial = report_path.with_name(report_path.name + ".partial")
        lines: list[str] = []
        groups = in_groups = 0
        try:
            with connect(ctx, params.connection) as conn, CancelWatch(conn, ctx.cancel):
                conn.read_only = True
                try:
                    totals = conn.execute(
                        sql.SQL("SELECT count(*), count(DISTINCT {n}), count(*) - count({e}), {u} FROM {t}").format(
                            n=normalized, e=email, u=unverified, t=table
                        )
                    ).fetchone()
                except Exception as exc:
                    ctx.raise_if_cancelled()
                    raise StepFailed(f"{params.table}: {str(exc).strip().splitlines()[0]}") from None
                assert totals is not None
                total, unique, missing, not_verified = (int(v) for v in totals)
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as report:
                    report.write(f"# Email audit of {params.table}\n\n")
                    report.write(f"Made {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by the cutover cockpit.\n\n")
                    report.write("| figure | count |\n|---|---:|\n")
                    for label, value in (
                        ("users", total),
                        ("distinct lower(trim(email))", unique),
                        ("NULL emails", missing),
                        ("unverified emails", not_verified),
                    ):
                        report.write(f"| {label} | {value:,} |\n")
                    report.write(
                        "\n## Emails shared by several accounts\n\n"
                        "v2 matches users by email: each group needs a decision before the window.\n\n"
                    )
                    # A server-side cursor: the groups stream, however many there are.
                    with conn.cursor(name="cockpit_audit_groups") as cur:
                        cur.execute(
                            sql.SQL(
                                "SELECT {n}, count(*), array_agg({i}::text ORDER BY {i}) FROM {t} "
                                "WHERE {e} IS NOT NULL GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1"
                            ).format(n=normalized, i=sql.Identifier(params.id_column), t=table, e=email)
                        )
                        for address, count, ids in cur:
                            groups += 1
                            in_groups += int(count)
                            report.write(f"- `{address}`: {count} accounts ({', '.join(ids)})\n")
                            if groups <= SHOWN_GROUPS:
                                lines.append(f"  {mask(address)}: {count} accounts")
                    if not groups:
                        report.write("None.\n")
                    report.write("\n## Accounts without an email\n\n")
                    with conn.cursor(name="cockpit_audit_missing") as cur:
                        cur.execute(
                            sql.SQL("SELECT {i}::text FROM {t} WHERE {e} IS NULL ORDER BY 1").format(
                                i=sql.Identifier(params.id_column), t=table, e=email
                            )
                        )
                        written = False
                        for (user_id,) in cur:
                            report.write(f"- {user_id}\n")
                            written = True
                        if not written:
                            report.write("None.\n")
                conn.rollback()
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, report_path)
        ctx.log(f"{total:,} users, {unique:,} distinct emails, {missing:,} without email, {not_verified:,} unverified")
        ctx.log(f"{groups:,} emails shared by {in_groups:,} accounts" + (":" if groups else ""))
        ctx.log_lines(lines)
        if groups > SHOWN_GROUPS:
            ctx.log(f"  ... and {groups - SHOWN_GROUPS:,} more")
        ctx.log(f"report: {Path(params.report)}")
        for name, value in (
            ("users", total),
            ("unique_emails", unique),
            ("null_emails", missing),
            ("unverified", not_verified),
            ("duplicate_groups", groups),
        ):
            ctx.metric(f"audit.{name}", value)
        problems = []
        for count, setting, text in (
            (groups, params.on_duplicates, f"{groups:,} emails are shared by several accounts"),
            (missing, params.on_missing, f"{missing:,} accounts have no email"),
            (not_verified, params.on_unverified, f"{not_verified:,} emails are unverified"),
        ):
            if not count:
                continue
            if setting == "fail":
                problems.append(text)
            else:
                ctx.log(f"warning: {text}")
        if problems:
            raise StepFailed("; ".join(problems) + f": resolve them (see {params.report}) before the window")
