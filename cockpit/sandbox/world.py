"""The rehearsal world on this machine: everything the demo's runbook talks to, on loopback.

`Sandbox` starts PostgreSQL (seeded with the PERM Tracker shape), the Convex stand-in, the v1
and v2 web stand-ins (v2's case list reads the Convex stand-in's documents), the DNS servers
a mail server for the announcements (aiosmtpd, keeping a mailbox folder), the Google Calendar
stand-in with v1's events in its users' calendars, and the stand-ins of the Render and
Supabase APIs the decommission calls, hands
back the environment variables the runbook references, and stops all of it on exit, on
Ctrl+C too.

With a `state` folder the world outlives the demo: PostgreSQL's data, the Convex stand-in's
documents and the DNS provider's records are kept there, so a demo that continues an
unfinished rehearsal finds v1, v2 and the record as the last one left them. `fresh` clears it
first. Before it starts anything it stops what a killed sandbox left running.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cockpit import shutdown
from cockpit.sandbox import calendar_seed, leftovers
from cockpit.sandbox.calendar import CalendarStandIn
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.dns.world import DnsSandbox
from cockpit.sandbox.mail import SandboxMailServer
from cockpit.sandbox.postgres import PostgresServer, SandboxError
from cockpit.sandbox.providers import Providers
from cockpit.sandbox.seed import SeedSize, seed
from cockpit.sandbox.web import StandInServer, v1_app, v2_app

# What `--break` can make fail, for rehearsing the rollback triggers.
BREAKABLE = {
    "auth": ("v2", "/api/auth/session"),
    "cases": ("v2", "/api/cases"),
    "health": ("v2", "/health"),
}
DATABASE = "permtracker"
SANDBOX_MAIL_PASSWORD = "sandbox-mail-password"  # a loopback server of the demo's own
RENDER_SERVICE = "srv-permtracker-api"
SUPABASE_PROJECT = "permtrackerv1ref"
__all__ = ["BREAKABLE", "Sandbox", "SandboxError", "state_folder"]


def state_folder(runbook: Path) -> Path:
    """Where the demo of `runbook` keeps its sandbox between runs: one folder per runbook."""
    digest = hashlib.sha256(str(runbook.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"{leftovers.KEPT_PREFIX}{digest}"


class Sandbox:
    def __init__(
        self,
        scale: float = 1.0,
        *,
        breaks: tuple[str, ...] = (),
        say: Callable[[str], None] = lambda text: None,
        state: Path | None = None,
        fresh: bool = True,
    ) -> None:
        unknown = [b for b in breaks if b not in BREAKABLE]
        if unknown:
            raise ValueError(f"cannot break {', '.join(unknown)}: choose from {', '.join(BREAKABLE)}")
        self.scale = scale
        self.breaks = breaks
        self.say = say
        self.state = state
        self.fresh = fresh
        self.postgres: PostgresServer | None = None
        self.v1: StandInServer | None = None
        self.v2: StandInServer | None = None
        self.convex: ConvexStandIn | None = None
        self.dns: DnsSandbox | None = None
        self.mail: SandboxMailServer | None = None
        self.providers: Providers | None = None
        self.calendar: CalendarStandIn | None = None
        self._mail_folder: tempfile.TemporaryDirectory[str] | None = None
        self.env: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._unregister: Callable[[], None] = lambda: None

    def start(self) -> Sandbox:
        self._unregister = shutdown.register(self.stop)
        try:
            leftovers.clear(self.say)
            self._prepare_state()
            size = SeedSize.for_scale(self.scale)
            self.say("starting PostgreSQL on 127.0.0.1 (sandbox)")
            keep = self.state / "postgres" if self.state is not None else None
            self.postgres = PostgresServer(name="cockpit-demo-pgdata", keep=keep).start()
            if self.postgres.created:
                dsn = self.postgres.create_database(DATABASE)
                self.say(
                    f"seeding v1: {size.users:,} users, {size.cases:,} cases, {size.notifications:,} notifications"
                )
                self.counts = seed(dsn, size)
            else:
                dsn = self.postgres.dsn(DATABASE)
                self.say("v1 as the unfinished rehearsal left it")
            self.convex = ConvexStandIn(self.state / "convex" if self.state is not None else None).start()
            self.say(f"Convex stand-in at {self.convex.url}")
            self.v1 = v1_app(dsn, users_at_work=True).start()
            self.v2 = v2_app(self.convex.store).start()
            for name in self.breaks:
                app, path = BREAKABLE[name]
                (self.v1 if app == "v1" else self.v2).break_path(path)
                self.say(f"stand-in {app} will fail {path} (--break {name})")
            self.dns = DnsSandbox(self.state / "dns.json" if self.state is not None else None).start()
            self.say(
                "DNS: Knot for permtracker.test at 127.0.53.1, 8 resolvers at 127.0.53.2-9 (port 53530), "
                "the Vercel API stand-in"
            )
            self.calendar = CalendarStandIn().start()
            connected = calendar_seed.seed_calendars(dsn, self.calendar)
            self.say(
                f"Google Calendar stand-in at {self.calendar.url}: {connected:,} users' calendars hold v1's events"
            )
            self.providers = Providers().start()
            v1 = self.v1
            # v1's API runs on the Render service: scaled to zero, it answers 503 to everyone.
            self.providers.on_scale = lambda service, instances: v1.scale(instances)
            self.providers.add_service(RENDER_SERVICE, "perm-tracker-api", instances=1)
            self.providers.add_project(SUPABASE_PROJECT, "perm-tracker")
            self.say(f"the Render and Supabase API stand-ins at {self.providers.url}")
            self.mail = self._start_mail()
            self.say(f"mail server at {self.mail.host}:{self.mail.port}; its mailbox is {self.mail.mailbox}")
            self.env = {
                **self.mail.env,
                "SMTP_TLS": "none",  # loopback: nothing to encrypt against
                "OPERATOR_EMAIL": "operator@permtracker.test",
                "CALENDAR_API": self.calendar.url,
                "CALENDAR_TOKEN_URI": self.calendar.url + "token",
                "GOOGLE_CLIENT_ID": calendar_seed.CLIENT_ID,
                "GOOGLE_CLIENT_SECRET": calendar_seed.CLIENT_SECRET,
                "CALENDAR_TOKEN_KEY": calendar_seed.FERNET_KEY,
                "RENDER_API": self.providers.url + "/render",
                "RENDER_API_KEY": self.providers.render_token,
                "RENDER_SERVICE_ID": RENDER_SERVICE,
                "SUPABASE_API": self.providers.url + "/supabase",
                "SUPABASE_ACCESS_TOKEN": self.providers.supabase_token,
                "SUPABASE_PROJECT_REF": SUPABASE_PROJECT,
                "V1_DATABASE_URL": dsn,
                "V1_URL": self.v1.url,
                "V2_URL": self.v2.url,
                "CONVEX_URL": self.convex.url,
                "CONVEX_DEPLOY_KEY": self.convex.deploy_key,
                **self.dns.env,
            }
            self.say(f"v1 stand-in at {self.v1.url}, v2 stand-in at {self.v2.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_mail(self) -> SandboxMailServer:
        """aiosmtpd with a login, its mailbox in the state folder (or a folder of its own)."""
        if self.state is not None:
            mailbox = self.state / "mailbox"
        else:
            self._mail_folder = tempfile.TemporaryDirectory(prefix="cockpit-demo-mail-")
            mailbox = Path(self._mail_folder.name) / "mailbox"
        return SandboxMailServer(mailbox, username="announcer", password=SANDBOX_MAIL_PASSWORD).start()

    def _prepare_state(self) -> None:
        if self.state is None:
            return
        if self.fresh and self.state.exists():
            shutil.rmtree(self.state)
        self.state.mkdir(mode=0o711, exist_ok=True)
        # Traversable (not readable) by others: PostgreSQL runs as an unprivileged user when root.
        os.chmod(self.state, 0o711)
        leftovers.claim(self.state)

    def stop(self) -> None:
        self._unregister()
        for server in (self.v2, self.v1):
            if server is not None:
                server.stop()
        self.v1 = self.v2 = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        if self.mail is not None:
            self.mail.stop()
            self.mail = None
        if self.providers is not None:
            self.providers.stop()
            self.providers = None
        if self.calendar is not None:
            self.calendar.stop()
            self.calendar = None
        if self._mail_folder is not None:
            self._mail_folder.cleanup()
            self._mail_folder = None
        if self.convex is not None:
            self.convex.stop()
            self.convex = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
