"""A stand-in for a Convex deployment, on loopback: not Convex, built from its HTTP contract.

It speaks what the cockpit uses (see research/anchors-migration.md and convex/cockpit.ts):
the snapshot imports of `npx convex import` and the one-shot `/api/import`
(`cockpit.sandbox.convex.imports`), and the Functions HTTP API (`/api/query|mutation|action`,
`/api/run/...`) for the shipped functions (`cockpit.sandbox.convex.functions`). Documents live
in SQLite with Convex-shaped ids and `_creationTime` (`cockpit.sandbox.convex.store`). Faults
are injected on request (`cockpit.sandbox.convex.faults`).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cockpit.sandbox.convex.faults import FaultDice, Faults
from cockpit.sandbox.convex.functions import ARGUMENTS, FUNCTIONS, FunctionError, RawJSON, ThrownConvexError
from cockpit.sandbox.convex.imports import BadRequest, SnapshotImports
from cockpit.sandbox.convex.migration_functions import MIGRATION_ARGUMENTS, MIGRATION_FUNCTIONS
from cockpit.sandbox.convex.store import DocumentStore
from cockpit.sandbox.convex.sync import serve_sync
from cockpit.sandbox.convex.sync_functions import SYNC_ARGUMENTS, SYNC_FUNCTIONS
from cockpit.sandbox.convex.values import FORMATS, PLAIN, ValueError64, decode, encode, validation_error
from cockpit.sandbox.leftovers import claim
from cockpit.sandbox.loopback import loopback_server

# Convex's sync WebSocket, under the client's version: /api/1.48.0/sync.
_SYNC = re.compile(r"^/api/[^/]+/sync$")


class ConvexStandIn:
    """Start with `start()`; `url` and `deploy_key` are what a runbook's connection needs."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        deploy_key: str | None = None,
        faults: Faults | None = None,
        function_error_status: int = 200,
    ) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="cockpit-convex-standin-"))
        self._own_folder = folder is None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._own_folder:
            claim(self.folder)
        self.deploy_key = deploy_key or "prod:standin|" + secrets.token_hex(16)
        self.faults = faults or Faults()
        self.function_error_status = function_error_status  # 200 as the OSS backend, or 560
        self.store = DocumentStore(self.folder / "documents.db")
        # The shipped functions; tests may define more (a user's migration, a status query).
        self.functions: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = {
            **FUNCTIONS,
            **MIGRATION_FUNCTIONS,
            **SYNC_FUNCTIONS,
        }
        self.imports = SnapshotImports(self.folder, self.store)
        self.requests: list[str] = []
        self.function_seconds = 0.0  # time spent inside functions: what a benchmark must not blame on its client
        self._lock = threading.Lock()
        self._dice = FaultDice(self.faults)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm, the second waits
            # for the client's delayed ACK, 40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                standin.handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                standin.handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                standin.handle(self, "PUT")

        self._stopped = False
        self._httpd = loopback_server(Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="convex-standin", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ConvexStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True  # sync connections end with the server
        self._httpd.shutdown()
        self._httpd.server_close()
        self.store.close()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- the request loop --------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request, injecting the faults asked for."""
        parts = urlsplit(request.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append(f"{method} {path}")
        dice = self._dice
        faulty = dice.applies_to(path)
        if faulty and self.faults.latency:
            time.sleep(self.faults.latency)
        refusal = dice.take_refusal(path)
        if refusal is not None:
            dice.count(f"refused {refusal}")
            self._send(
                request,
                refusal,
                {"code": "Refused", "message": f"stand-in: injected {refusal}"},
                {"Retry-After": f"{self.faults.retry_after:g}"} if refusal == 429 else None,
            )
            return
        if faulty and dice.chance(self.faults.rate_limit_rate):
            dice.count("rate_limit")
            self._send(
                request,
                429,
                {"code": "RateLimited", "message": "Too many requests"},
                {"Retry-After": f"{self.faults.retry_after:g}"},
            )
            return
        if faulty and dice.chance(self.faults.error_rate):
            dice.count("error")
            self._send(request, 500, {"code": "InternalServerError", "message": "stand-in: injected failure"})
            return
        if path == "/version":
            self._send(request, 200, "stand-in")
            return
        if method == "GET" and _SYNC.match(path) and request.headers.get("Upgrade", "").lower() == "websocket":
            # The admin key comes inside the sync protocol, not as a header of the upgrade.
            serve_sync(request, self._run, self.deploy_key, lambda: self._stopped)
            return
        if request.headers.get("Authorization", "") != f"Convex {self.deploy_key}":
            self._send(
                request, 401, {"code": "BadAdminKey", "message": "The provided admin key was invalid for this instance"}
            )
            return
        try:
            status, payload = self._route(method, path, query, body)
        except BadRequest as exc:
            status, payload = 400, {"code": exc.code, "message": str(exc)}
        except Exception as exc:  # a fault of the stand-in itself: say so, as a server would
            status, payload = 500, {"code": "InternalServerError", "message": f"stand-in: {type(exc).__name__}: {exc}"}
        if dice.take_drop(path) or (faulty and dice.chance(self.faults.drop_rate)):
            dice.count("dropped")
            self._drop(request)  # it happened, but the client will never know
            return
        self._send(request, status, payload)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else _encoded(payload)
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _drop(request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        with contextlib.suppress(OSError):  # the client may be gone already
            request.connection.shutdown(socket.SHUT_RDWR)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/api/import/start_upload":
            return 200, {"uploadToken": self.imports.start_upload()}
        if path == "/api/import/upload_part":
            return 200, self.imports.upload_part(query, body)
        if path == "/api/import/finish_upload":
            return 200, {"importId": self.imports.finish_upload(_json(body))}
        if path == "/api/import":
            return 200, {"numWritten": self.imports.import_at_once(query, body)}
        if path == "/api/perform_import":
            self.imports.perform(_json(body).get("importId", ""))
            return 200, None
        if path == "/api/cancel_import":
            self.imports.cancel(_json(body).get("importId", ""))
            return 200, None
        if path in ("/api/query", "/api/mutation", "/api/action", "/api/function"):
            request = _json(body)
            return self._call(path.rsplit("/", 1)[1], request.get("path", ""), request)
        if path.startswith("/api/run/"):
            name = path[len("/api/run/") :]
            module, _, function = name.rpartition("/")
            return self._call("function", f"{module}:{function}", _json(body))
        if path == "/_standin/tables":
            return 200, {table: self.store.count(table) for table in self.store.tables()}
        return 404, {"code": "NotFound", "message": f"no route {method} {path}"}

    # -- functions -------------------------------------------------------------------------

    def _call(self, kind: str, path: str, request: dict[str, Any]) -> tuple[int, Any]:
        """A function call of the HTTP API: `args` named (an object) or positional (an array of
        one object, as ConvexHttpClient sends them), in Convex's encoded JSON; the answer in the
        `format` asked for."""
        form = request.get("format") or PLAIN
        if form not in FORMATS:
            return 400, {
                "code": "BadRequest",
                "message": f"unknown format {form!r}: expected one of {', '.join(FORMATS)}",
            }
        raw = request.get("args", {})
        if isinstance(raw, list):
            if len(raw) != 1:
                return self._function_error(f"ArgumentValidationError: expected one argument object, got {len(raw)}")
            raw = raw[0]
        try:
            args = decode(raw)
        except ValueError64 as exc:
            return 400, {"code": "BadConvexValue", "message": str(exc)}
        status, answer = self._run(kind, path, args)
        if answer.get("status") == "success":
            answer = {**answer, "value": encode(answer["value"], form)}
        return status, answer

    def _run(self, kind: str, path: str, args: Any) -> tuple[int, Any]:
        name = path.removesuffix(".js").replace(".js:", ":")
        if name in ("_system/cli/queryImport", "_system/cli/queryImport:default"):
            try:
                value: Any = self.imports.value_of(self.imports.get(args.get("importId", "")))
            except BadRequest as exc:
                return self._function_error(str(exc))
            return 200, {"status": "success", "value": value, "logLines": []}
        if name == "_system/cli/queryImport:list":
            value = self.imports.all_values()
            return 200, {"status": "success", "value": value, "logLines": []}
        entry = self.functions.get(name)
        if entry is None:
            return self._function_error(
                f"Could not find function for '{path}'. Did you forget to run `npx convex dev` or `npx convex deploy`?"
            )
        function_kind, _internal, implementation = entry
        if kind not in ("function", function_kind):
            return self._function_error(
                f"Trying to execute {path} as {kind.capitalize()}, but it is defined as {function_kind.capitalize()}."
            )
        # Refused before the function runs, as Convex refuses it: no "Uncaught Error".
        validators = _ARGUMENTS.get(name)  # a function a test defines takes anything
        refusal = None if validators is None else validation_error(args, validators)
        if refusal is not None:
            return self._function_error(refusal)
        started = time.perf_counter()
        try:
            value = implementation(self.store, args)
        except ThrownConvexError as exc:
            return self._function_error(f"Uncaught {exc}", data=exc.data)
        except (FunctionError, ValueError, KeyError) as exc:
            return self._function_error(f"Uncaught Error: {exc}")
        finally:
            with self._lock:
                self.function_seconds += time.perf_counter() - started
        return 200, {"status": "success", "value": value, "logLines": []}

    def _function_error(self, message: str, data: Any = None) -> tuple[int, Any]:
        answer = {"status": "error", "errorMessage": message, "logLines": []}
        return self.function_error_status, answer if data is None else {**answer, "errorData": data}


# The validators of every shipped function, path -> {argument: validator}.
_ARGUMENTS = ARGUMENTS | MIGRATION_ARGUMENTS | SYNC_ARGUMENTS
_COMPACT = (",", ":")  # as Convex writes JSON: no spaces


def _encoded(payload: Any) -> bytes:
    """The payload as JSON; a function's value that is JSON text already goes in as it is."""
    value = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(value, RawJSON):
        return json.dumps(payload, separators=_COMPACT).encode()
    rest = json.dumps({k: v for k, v in payload.items() if k != "value"}, separators=_COMPACT)
    return (rest[:-1] + ("," if rest != "{}" else "") + '"value":' + value.text + "}").encode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("BadJsonBody", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("BadJsonBody", "the request body must be a JSON object")
    return value
