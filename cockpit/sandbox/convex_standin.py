"""A stand-in for a Convex deployment, on loopback: not Convex, built from its HTTP contract.

It speaks what the cockpit uses (see research/anchors-migration.md and convex/cockpit.ts):
the snapshot import protocol of `npx convex import` (start_upload, upload_part, finish_upload,
the `_system/cli/queryImport` state machine, perform_import), the one-shot `/api/import`, and
the Functions HTTP API (`/api/query|mutation|action`, `/api/run/...`) for the shipped
functions. Documents live in SQLite with Convex-shaped ids and `_creationTime`.

Faults on request (`Faults`): an error rate and 429s with Retry-After before a request takes
effect, latency, and dropped connections after it took effect (the response is lost) - the
case that tests whether a client imports twice.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import secrets
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cockpit.sandbox.convex_functions import FUNCTIONS, FunctionError, RawJSON, check_arguments
from cockpit.sandbox.convex_store import DocumentStore, new_id
from cockpit.sandbox.leftovers import claim
from cockpit.sandbox.loopback import loopback_server

MAX_DOCUMENT_BYTES = 1 << 20


@dataclass
class Faults:
    error_rate: float = 0.0  # answer 500 before doing anything
    rate_limit_rate: float = 0.0  # answer 429 with Retry-After before doing anything
    retry_after: float = 0.2
    drop_rate: float = 0.0  # do the work, then close the connection without answering
    latency: float = 0.0
    paths: tuple[str, ...] = ("/api/",)  # which requests the faults apply to
    drop_next: dict[str, int] = field(default_factory=dict)  # path -> answers to lose next, after the work
    refuse_next: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer next, before it
    seed: int = 20261205
    injected: dict[str, int] = field(default_factory=dict)


def encode_int64(value: int) -> dict[str, str]:
    """Convex's JSON encoding of an Int64."""
    return {"$integer": base64.b64encode(struct.pack("<q", value)).decode()}


class _DroppedConnection(Exception):
    pass


@dataclass
class _Import:
    id: str
    table: str
    mode: str
    format: str
    path: Path
    created: float
    state: dict[str, Any]
    component: str | None = None


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
        self.functions: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = dict(FUNCTIONS)
        self.imports: dict[str, _Import] = {}
        self.requests: list[str] = []
        self.function_seconds = 0.0  # time spent inside functions: what a benchmark must not blame on its client
        self._uploads: dict[str, dict[str, Path]] = {}
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm, the second waits
            # for the client's delayed ACK, 40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                standin._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                standin._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                standin._handle(self, "PUT")

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
        self._httpd.shutdown()
        self._httpd.server_close()
        self.store.close()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- the request loop --------------------------------------------------------------------

    def _chance(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._random.random() < rate

    def _take_drop(self, path: str) -> bool:
        with self._lock:
            left = self.faults.drop_next.get(path, 0)
            if left:
                self.faults.drop_next[path] = left - 1
            return left > 0

    def _take_refusal(self, path: str) -> int | None:
        with self._lock:
            queue = self.faults.refuse_next.get(path)
            return queue.pop(0) if queue else None

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults.injected[kind] = self.faults.injected.get(kind, 0) + 1

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append(f"{method} {path}")
        faulty = any(path.startswith(p) for p in self.faults.paths)
        if faulty and self.faults.latency:
            time.sleep(self.faults.latency)
        refusal = self._take_refusal(path)
        if refusal is not None:
            self._count_fault(f"refused {refusal}")
            self._send(
                request,
                refusal,
                {"code": "Refused", "message": f"stand-in: injected {refusal}"},
                {"Retry-After": f"{self.faults.retry_after:g}"} if refusal == 429 else None,
            )
            return
        if faulty and self._chance(self.faults.rate_limit_rate):
            self._count_fault("rate_limit")
            self._send(
                request,
                429,
                {"code": "RateLimited", "message": "Too many requests"},
                {"Retry-After": f"{self.faults.retry_after:g}"},
            )
            return
        if faulty and self._chance(self.faults.error_rate):
            self._count_fault("error")
            self._send(request, 500, {"code": "InternalServerError", "message": "stand-in: injected failure"})
            return
        if path == "/version":
            self._send(request, 200, "stand-in")
            return
        if request.headers.get("Authorization", "") != f"Convex {self.deploy_key}":
            self._send(request, 401, {"code": "BadAdminKey", "message": "The provided admin key was invalid"})
            return
        try:
            status, payload = self._route(method, path, query, body)
        except _BadRequest as exc:
            status, payload = 400, {"code": exc.code, "message": str(exc)}
        except Exception as exc:  # a fault of the stand-in itself: say so, as a server would
            status, payload = 500, {"code": "InternalServerError", "message": f"stand-in: {type(exc).__name__}: {exc}"}
        if self._take_drop(path) or (faulty and self._chance(self.faults.drop_rate)):
            self._count_fault("dropped")
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
            token = "upload-" + secrets.token_hex(12)
            with self._lock:
                self._uploads[token] = {}
            return 200, {"uploadToken": token}
        if path == "/api/import/upload_part":
            return 200, self._upload_part(query, body)
        if path == "/api/import/finish_upload":
            return 200, {"importId": self._finish_upload(_json(body))}
        if path == "/api/import":
            return 200, {"numWritten": self._import_at_once(query, body)}
        if path == "/api/perform_import":
            self._perform(_json(body).get("importId", ""))
            return 200, None
        if path == "/api/cancel_import":
            imp = self._get_import(_json(body).get("importId", ""))
            imp.state = {"state": "failed", "error_message": "Import canceled"}
            return 200, None
        if path in ("/api/query", "/api/mutation", "/api/action", "/api/function"):
            request = _json(body)
            return self._call(path.rsplit("/", 1)[1], request.get("path", ""), request.get("args", {}))
        if path.startswith("/api/run/"):
            name = path[len("/api/run/") :]
            module, _, function = name.rpartition("/")
            return self._call("function", f"{module}:{function}", _json(body).get("args", {}))
        if path == "/_standin/tables":
            return 200, {table: self.store.count(table) for table in self.store.tables()}
        return 404, {"code": "NotFound", "message": f"no route {method} {path}"}

    # -- import ----------------------------------------------------------------------------

    def _upload_part(self, query: dict[str, str], body: bytes) -> str:
        token = query.get("uploadToken", "")
        try:
            number = int(query.get("partNumber", ""))
        except ValueError:
            raise _BadRequest("ImportFailed", "partNumber must be a number") from None
        with self._lock:
            parts = self._uploads.get(token)
        if parts is None:
            raise _BadRequest("InvalidUploadToken", f"unknown upload token {token!r}")
        if not 1 <= number < 10000:
            raise _BadRequest("ImportFailed", "partNumber must be between 1 and 9999")
        folder = self.folder / "uploads" / token
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"part-{number:05d}"
        part.write_bytes(body)
        part_token = f"{token}:{number}"
        with self._lock:
            parts[part_token] = part
        return part_token

    def _finish_upload(self, request: dict[str, Any]) -> str:
        args = request.get("import", {})
        token = request.get("uploadToken", "")
        with self._lock:
            parts = self._uploads.get(token)
        if parts is None:
            raise _BadRequest("InvalidUploadToken", f"unknown upload token {token!r}")
        table = args.get("tableName")
        if args.get("format") != "jsonLines":
            raise _BadRequest("ImportFormatUnsupported", "the stand-in imports jsonLines only")
        if not table:
            raise _BadRequest("InvalidName", "JSONL import requires table name")
        mode = args.get("mode", "requireEmpty")
        if mode not in ("requireEmpty", "append", "replace", "replaceAll"):
            raise _BadRequest("InvalidImportMode", f"unknown mode {mode}")
        path = self.folder / "uploads" / f"{token}.jsonl"
        with path.open("wb") as out:
            for part_token in request.get("partTokens", []):
                part = parts.get(part_token)
                if part is None:
                    raise _BadRequest("InvalidUploadToken", f"unknown part token {part_token!r}")
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        import_id = new_id()
        imp = _Import(
            import_id,
            table,
            mode,
            "jsonLines",
            path,
            time.time() * 1000,
            {"state": "uploaded"},
            args.get("componentPath"),
        )
        with self._lock:
            self.imports[import_id] = imp
        threading.Thread(target=self._parse, args=(imp,), daemon=True).start()
        return import_id

    def _get_import(self, import_id: str) -> _Import:
        with self._lock:
            imp = self.imports.get(import_id)
        if imp is None:
            raise _BadRequest("InvalidImport", f"invalid import id {import_id}")
        return imp

    def _documents(self, path: Path) -> Iterator[dict[str, Any]]:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, 1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raise ValueError("Utf8BomNotSupported: the file starts with a UTF-8 byte order mark")
                if not raw.strip():
                    continue
                if len(raw) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"line {number}: document is larger than 1 MiB")
                try:
                    doc = json.loads(raw)
                except ValueError as exc:
                    raise ValueError(f"line {number}: not valid JSON: {exc}") from None
                if not isinstance(doc, dict):
                    raise ValueError(f"line {number}: a document must be a JSON object")
                bad = [k for k in doc if k.startswith("$") or (k.startswith("_") and k not in ("_id", "_creationTime"))]
                if bad:
                    raise ValueError(f"line {number}: invalid field name {bad[0]!r}")
                yield doc

    def _parse(self, imp: _Import) -> None:
        try:
            rows = sum(1 for _ in self._documents(imp.path))
        except ValueError as exc:
            imp.state = {"state": "failed", "error_message": f"Hit an error while importing: {exc}"}
            return
        existing = self.store.count(imp.table)
        if imp.mode == "requireEmpty" and existing:
            imp.state = {
                "state": "failed",
                "error_message": f"Import requires the table {imp.table!r} to be empty, but it has {existing} "
                "documents. Use --replace or --append",
            }
            return
        delete = existing if imp.mode in ("replace", "replaceAll") else 0
        imp.state = {
            "state": "waiting_for_confirmation",
            "require_manual_confirmation": True,
            "message_to_confirm": f"Import change summary:\ntable | create | delete |\n"
            f"{imp.table} | {rows} | {delete} of {existing} |",
        }

    def _perform(self, import_id: str) -> None:
        imp = self._get_import(import_id)
        if imp.state.get("state") != "waiting_for_confirmation":
            raise _BadRequest("ImportNotConfirmable", f"import {import_id} is {imp.state.get('state')}")
        imp.state = {"state": "in_progress", "progress_message": "Importing", "checkpoint_messages": []}
        threading.Thread(target=self._run_import, args=(imp,), daemon=True).start()

    def _run_import(self, imp: _Import) -> None:
        written = 0
        try:
            # One transaction: like Convex, nobody sees a half-imported table.
            with self.store.transaction():
                if imp.mode in ("replace", "replaceAll"):
                    self.store.clear(imp.table)
                batch: list[dict[str, Any]] = []
                for doc in self._documents(imp.path):
                    batch.append(doc)
                    if len(batch) == 1000:
                        written += self.store.insert_many(imp.table, batch)
                        batch = []
                        imp.state = {**imp.state, "progress_message": f'Importing "{imp.table}" ({written} documents)'}
                written += self.store.insert_many(imp.table, batch)
        except Exception as exc:  # the import fails as a whole
            imp.state = {"state": "failed", "error_message": f"Hit an error while importing: {exc}"}
            return
        imp.state = {
            "state": "completed",
            "num_rows_written": encode_int64(written),
            "checkpoint_messages": [f'Imported "{imp.table}" ({written} documents)'],
        }

    def _import_at_once(self, query: dict[str, str], body: bytes) -> int:
        """The one-shot `POST /api/import?tableName=&format=&mode=`: upload and import in one request."""
        table = query.get("tableName")
        if not table or query.get("format") != "jsonLines":
            raise _BadRequest("InvalidName", "a jsonLines import needs a tableName")
        path = self.folder / f"once-{secrets.token_hex(6)}.jsonl"
        path.write_bytes(body)
        imp = _Import(
            new_id(),
            table,
            query.get("mode", "requireEmpty"),
            "jsonLines",
            path,
            time.time() * 1000,
            {"state": "uploaded"},
        )
        self._parse(imp)
        if imp.state["state"] == "failed":
            raise _BadRequest("ImportFailed", imp.state["error_message"])
        imp.state = {"state": "in_progress"}
        self._run_import(imp)
        if imp.state["state"] != "completed":
            raise _BadRequest("ImportFailed", imp.state.get("error_message", "failed"))
        return int(struct.unpack("<q", base64.b64decode(imp.state["num_rows_written"]["$integer"]))[0])

    def _import_value(self, imp: _Import) -> dict[str, Any]:
        return {
            "_id": imp.id,
            "_creationTime": imp.created,
            "state": imp.state,
            "format": {"format": imp.format, "table": imp.table},
            "mode": imp.mode,
            "componentPath": imp.component,
        }

    # -- functions -------------------------------------------------------------------------

    def _call(self, kind: str, path: str, args: Any) -> tuple[int, Any]:
        name = path.removesuffix(".js").replace(".js:", ":")
        if name in ("_system/cli/queryImport", "_system/cli/queryImport:default"):
            try:
                value: Any = self._import_value(self._get_import(args.get("importId", "")))
            except _BadRequest as exc:
                return self._function_error(str(exc))
            return 200, {"status": "success", "value": value, "logLines": []}
        if name == "_system/cli/queryImport:list":
            with self._lock:
                value = [self._import_value(i) for i in self.imports.values()]
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
        started = time.perf_counter()
        try:
            check_arguments(name, args)
            value = implementation(self.store, args)
        except (FunctionError, ValueError, KeyError) as exc:
            return self._function_error(f"Uncaught Error: {exc}")
        finally:
            with self._lock:
                self.function_seconds += time.perf_counter() - started
        return 200, {"status": "success", "value": value, "logLines": []}

    def _function_error(self, message: str) -> tuple[int, Any]:
        return self.function_error_status, {"status": "error", "errorMessage": message, "logLines": []}


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _encoded(payload: Any) -> bytes:
    """The payload as JSON; a function's value that is JSON text already goes in as it is."""
    value = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(value, RawJSON):
        return json.dumps(payload).encode()
    rest = json.dumps({k: v for k, v in payload.items() if k != "value"})
    return (rest[:-1] + (", " if rest != "{}" else "") + '"value": ' + value.text + "}").encode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise _BadRequest("BadJsonBody", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("BadJsonBody", "the request body must be a JSON object")
    return value
