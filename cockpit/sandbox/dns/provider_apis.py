"""Stand-ins for the Cloudflare (API v4) and Vercel DNS record APIs, on loopback.

They are stand-ins, not the services: records live in memory, and only the requests the
cockpit's providers make are served, shaped as the providers document them
(research/anchors-migration.md section 8): Cloudflare wraps every answer in
`{success, errors, messages, result}`; Vercel lists records under `records` with a
`pagination.next` cursor. Both check the bearer token, and inject faults on request: the next
N requests answered 429 with Retry-After, or 500.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cockpit.sandbox.loopback import loopback_server


@dataclass
class ApiFaults:
    throttle_next: int = 0  # answer 429 (Retry-After) to this many requests
    fail_next: int = 0  # answer 500 to this many requests
    fail_writes_next: int = 0  # answer 500 to this many POST, PATCH or DELETE requests
    retry_after: float = 0.2


@dataclass
class StoredRecord:
    id: str
    name: str  # Cloudflare: the full name; Vercel: relative to the domain ("" for the apex)
    type: str
    value: str
    ttl: int
    proxied: bool = False


@dataclass
class _Server:
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    faults: ApiFaults = field(default_factory=ApiFaults)
    records: list[StoredRecord] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    on_change: Callable[[list[StoredRecord]], None] | None = None  # called after each write

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(list(self.records))

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def refused(self) -> tuple[int, Any]:
        raise NotImplementedError

    def start(self) -> _Server:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers: dict[str, str] = {}
                with owner.lock:
                    owner.requests.append((method, parts.path))
                    if owner.faults.throttle_next:
                        owner.faults.throttle_next -= 1
                        status, payload = 429, {"error": "rate limited (stand-in fault)"}
                        headers["Retry-After"] = f"{owner.faults.retry_after:g}"
                    elif owner.faults.fail_next or (owner.faults.fail_writes_next and method != "GET"):
                        if owner.faults.fail_next:
                            owner.faults.fail_next -= 1
                        else:
                            owner.faults.fail_writes_next -= 1
                        status, payload = 500, {"error": "internal error (stand-in fault)"}
                    elif self.headers.get("Authorization") != f"Bearer {owner.token}":
                        status, payload = owner.refused()
                    else:
                        try:
                            body = json.loads(raw) if raw else None
                            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                            status, payload = owner.route(method, parts.path, query, body)
                        except (ValueError, KeyError, TypeError) as exc:
                            status, payload = 400, {"error": f"bad request: {exc}"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

        self._httpd = loopback_server(Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def find(self, record_id: str) -> StoredRecord | None:
        return next((r for r in self.records if r.id == record_id), None)


@dataclass
class CloudflareStandIn(_Server):
    """Cloudflare API v4 DNS records for one zone, under /client/v4."""

    zone_id: str = "023e105f4ecef8ad9ca31a8372d0c353"

    def _record(self, r: StoredRecord) -> dict[str, Any]:
        return {
            "id": r.id,
            "zone_id": self.zone_id,
            "name": r.name,
            "type": r.type,
            "content": r.value,
            "ttl": r.ttl,
            "proxied": r.proxied,
        }

    @staticmethod
    def _ok(result: Any) -> dict[str, Any]:
        return {"success": True, "errors": [], "messages": [], "result": result}

    def refused(self) -> tuple[int, Any]:
        return 403, {
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        }

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = f"/client/v4/zones/{self.zone_id}/dns_records"
        if not path.startswith(prefix):
            return 404, {
                "success": False,
                "errors": [{"code": 7003, "message": "Could not route to " + path}],
                "messages": [],
                "result": None,
            }
        record_id = path[len(prefix) :].strip("/")
        if method == "GET" and not record_id:
            found = [
                r
                for r in self.records
                if ("type" not in query or r.type == query["type"]) and ("name" not in query or r.name == query["name"])
            ]
            return 200, {
                **self._ok([self._record(r) for r in found]),
                "result_info": {"page": 1, "per_page": 100, "count": len(found), "total_count": len(found)},
            }
        if method == "POST" and not record_id:
            created = StoredRecord(
                f"{next(self._ids):032x}",
                body["name"],
                body["type"],
                body["content"],
                int(body.get("ttl", 1)),
                bool(body.get("proxied", False)),
            )
            self.records.append(created)
            self._changed()
            return 200, self._ok(self._record(created))
        record = self.find(record_id)
        if record is None:
            return 404, {
                "success": False,
                "errors": [{"code": 81044, "message": "Record does not exist."}],
                "messages": [],
                "result": None,
            }
        if method == "PATCH":
            record.value = body.get("content", record.value)
            record.ttl = int(body.get("ttl", record.ttl))
            record.proxied = bool(body.get("proxied", record.proxied))
            self._changed()
            return 200, self._ok(self._record(record))
        if method == "DELETE":
            self.records.remove(record)
            self._changed()
            return 200, self._ok({"id": record.id})
        return 405, {
            "success": False,
            "errors": [{"code": 10405, "message": "method not allowed"}],
            "messages": [],
            "result": None,
        }

    @property
    def api_url(self) -> str:
        return self.url + "/client/v4"


@dataclass
class VercelStandIn(_Server):
    """Vercel's DNS record endpoints for one domain; pages of `limit` records."""

    domain: str = "example.test"
    team_id: str | None = None

    def _record(self, r: StoredRecord) -> dict[str, Any]:
        return {
            "id": r.id,
            "slug": r.id,
            "name": r.name,
            "type": r.type,
            "value": r.value,
            "ttl": r.ttl,
            "creator": "stand-in",
            "created": 0,
        }

    def refused(self) -> tuple[int, Any]:
        return 403, {"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.team_id is not None and query.get("teamId") != self.team_id:
            return 403, {"error": {"code": "forbidden", "message": "You don't have access to this domain"}}
        listing = f"/v5/domains/{self.domain}/records"
        creating = f"/v2/domains/{self.domain}/records"
        if method == "GET" and path == listing:
            limit = int(query.get("limit", 20))
            start = int(query.get("until", 0))
            page = self.records[start : start + limit]
            following = start + limit if start + limit < len(self.records) else None
            return 200, {
                "records": [self._record(r) for r in page],
                "pagination": {"count": len(page), "next": following, "prev": start or None},
            }
        if method == "POST" and path == creating:
            created = StoredRecord(
                f"rec_{next(self._ids):024x}", body["name"], body["type"], body["value"], int(body.get("ttl", 60))
            )
            self.records.append(created)
            self._changed()
            return 200, {"uid": created.id, "updated": 0}
        if method in ("PATCH", "DELETE"):
            found = self.find(path.rsplit("/", 1)[1])
            if found is None:
                return 404, {"error": {"code": "not_found", "message": "Record not found"}}
            if method == "PATCH" and path.startswith("/v1/domains/records/"):
                found.value = body.get("value", found.value)
                found.ttl = int(body.get("ttl", found.ttl))
                self._changed()
                return 200, self._record(found)
            if path.startswith(creating + "/"):
                self.records.remove(found)
                self._changed()
                return 200, {}
        return 404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
