"""Stand-ins for the PERM Tracker v1 and v2 web apps, on loopback, for the smoke checks.

They are sandbox stand-ins, not the real apps: v1 answers from the sandbox PostgreSQL (and
refuses writes once the database is read-only, as the real app would); v2 answers health,
sign-in and case-list requests. Either can be told to fail a path (`break_path`) or to answer
slowly, so rehearsals can exercise the rollback triggers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cockpit.sandbox.convex.store import DocumentStore
from cockpit.sandbox.loopback import loopback_server
from cockpit.sandbox.v1_users import ScaledToZero, UsersAtWork

Handler = Callable[[str, dict[str, list[str]], bytes], tuple[int, Any]]


class StandInServer:
    """A small JSON HTTP server on 127.0.0.1 with routes and injectable faults."""

    def __init__(self, name: str, routes: dict[tuple[str, str], Handler]) -> None:
        self.name = name
        self.routes = routes
        self.broken: dict[str, int] = {}
        self.down = False  # scaled to zero instances: every request is answered 503
        self.on_scale: Callable[[int], None] | None = None
        self.latency = 0.0
        self.on_stop: Callable[[], None] | None = None
        self.requests = 0
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def _serve(self, method: str) -> None:
                server.requests += 1
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if server.latency:
                    time.sleep(server.latency)
                status: int
                payload: Any
                if server.down:
                    status, payload = 503, {"error": f"{server.name}: no instance is running"}
                elif parts.path in server.broken:
                    status, payload = server.broken[parts.path], {"error": f"{server.name}: injected failure"}
                else:
                    handler = server.routes.get((method, parts.path))
                    if handler is None:
                        status, payload = 404, {"error": f"no route {method} {parts.path}"}
                    else:
                        try:
                            status, payload = handler(parts.path, parse_qs(parts.query), body)
                        except Exception as exc:  # the stand-in reports its own faults as 500s
                            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve("HEAD")

        self._httpd = loopback_server(_Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"standin-{name}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def scale(self, instances: int) -> None:
        """Render scaled the app's service: at zero, nothing answers and nothing of it runs."""
        self.down = instances == 0
        if self.on_scale is not None:
            self.on_scale(instances)

    def break_path(self, path: str, status: int = 500) -> None:
        self.broken[path] = status

    def start(self) -> StandInServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self.on_stop is not None:
            self.on_stop()


class _Pool:
    """One long-lived session as `authenticator`, as PostgREST keeps: it reconnects when ended."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._lock = threading.Lock()
        self._conn: Any = None
        self._instances = 1

    def scale(self, instances: int) -> None:
        """At zero instances the session ends, and none opens until the service is scaled up."""
        with self._lock:
            self._instances = instances
            if instances == 0 and self._conn is not None:
                self._conn.close()
                self._conn = None

    def query(self, sql: str, role: str = "anon") -> Any:
        import psycopg

        with self._lock:
            if self._instances == 0:
                raise ScaledToZero("v1's API has no instance")
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(
                            self.dsn,
                            user="authenticator",
                            connect_timeout=5,
                            autocommit=True,
                            application_name="v1-api",
                        )
                    self._conn.execute(f"SET ROLE {role}")
                    row = self._conn.execute(sql).fetchone()
                    return row[0] if row else None
                except psycopg.OperationalError:
                    # Ended by the administrator (or the server restarted): reconnect once.
                    self._conn = None
                    if attempt == 2:
                        raise
        return None

    def write_probe(self) -> bool:
        """True when a write as `authenticated` would be accepted."""
        import psycopg

        with psycopg.connect(self.dsn, user="authenticator", connect_timeout=5) as conn:
            try:
                conn.execute("SET ROLE authenticated")
                conn.execute("CREATE TEMP TABLE cockpit_v1_write (x int)")
                return True
            except psycopg.errors.ReadOnlySqlTransaction:
                return False
            finally:
                conn.rollback()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def v1_app(dsn: str, users_at_work: bool = False) -> StandInServer:
    """PERM Tracker v1 stand-in, backed by the sandbox database through an `authenticator`
    session; with `users_at_work`, its users keep changing their data while it takes writes."""
    pool = _Pool(dsn)

    def health(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        read_only = pool.query("SHOW default_transaction_read_only") == "on"
        return 200, {"status": "ok", "app": "v1", "read_only": read_only}

    def cases_count(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {
            "count": pool.query("SELECT count(*) FROM public.cases WHERE deleted_at IS NULL", role="authenticated")
        }

    def create_case(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if not pool.write_probe():
            return 503, {"error": "PERM Tracker is under maintenance (read-only)"}
        return 201, {"created": True}

    server = StandInServer(
        "v1",
        {
            ("GET", "/health"): health,
            ("GET", "/api/cases/count"): cases_count,
            ("POST", "/api/cases"): create_case,
        },
    )
    server.on_scale = pool.scale
    if users_at_work:
        users = UsersAtWork(pool.query).start()

        def stop() -> None:
            users.stop()
            pool.close()

        server.on_stop = stop
    else:
        server.on_stop = pool.close
    return server


def v2_app(documents: DocumentStore | None = None) -> StandInServer:
    """PERM Tracker v2 stand-in: health, Google sign-in session, the case list.

    With the Convex stand-in's documents, the case list is what the data path imported.
    """

    def health(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"status": "ok", "app": "v2"}

    def session(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"authenticated": True, "provider": "google"}

    def cases(path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        limit = int(q.get("limit", ["20"])[0])
        if documents is None:
            return 200, {"items": [], "limit": limit}
        page = documents.paginate("cases", None, limit)
        items = [
            {"_id": d["_id"], "employerName": d.get("employerName"), "caseStatus": d.get("caseStatus")}
            for d in page.documents
        ]
        return 200, {"items": items, "limit": limit, "total": documents.count("cases")}

    return StandInServer(
        "v2",
        {
            ("GET", "/health"): health,
            ("HEAD", "/health"): health,
            ("GET", "/api/auth/session"): session,
            ("GET", "/api/cases"): cases,
        },
    )
