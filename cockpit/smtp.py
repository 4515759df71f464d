"""Opening a session with the SMTP server of an `smtp` connection: TLS as the connection says,
the login, and one clear sentence when any of it fails (the server, the account and the
server's reply; never the password). The announcements (`email.send`) and the triggers'
notices both send through it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import smtplib


class SmtpProblem(Exception):
    """The server could not be reached, refused TLS or refused the login: the message says which."""


def reply_of(code: int, text: bytes | str) -> str:
    """A server's reply on one line: "535 5.7.8 Authentication credentials invalid"."""
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(said.split())}".strip()


def open_session(connection: Any, timeout: float = 30.0) -> smtplib.SMTP:
    # Imported on first use: every step kind imports this module, through the plugin API.
    import smtplib
    import ssl

    conn = connection
    port = int(conn.port)
    where = f"{conn.host}:{port}"
    try:
        if conn.tls == "ssl":
            session: smtplib.SMTP = smtplib.SMTP_SSL(
                conn.host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            session = smtplib.SMTP(conn.host, port, timeout=timeout)
        session.ehlo()
        if conn.tls == "starttls":
            if not session.has_extn("starttls"):
                session.close()
                raise SmtpProblem(f'the SMTP server at {where} does not offer STARTTLS (tls = "starttls")')
            session.starttls(context=ssl.create_default_context())
            session.ehlo()
        if conn.username:
            session.login(conn.username, conn.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        said = reply_of(exc.smtp_code, exc.smtp_error)
        raise SmtpProblem(f"the SMTP server at {where} refused the login of {conn.username!r}: {said}") from None
    except smtplib.SMTPNotSupportedError:
        raise SmtpProblem(
            f"the SMTP server at {where} offers no login (AUTH), but the connection has a username"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpProblem(f"cannot reach the SMTP server at {where}: {exc}") from None
    return session
