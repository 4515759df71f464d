"""A stand-in of the Google Calendar API v3 and of Google's OAuth token endpoint, from their
documented requests and responses, for the v1 calendar cleanup:

- `POST /token` (grant_type=refresh_token): an access token for a user's refresh token; a
  revoked one is `400 {"error": "invalid_grant"}`.
- `GET [/calendar/v3]/calendars/{calendarId}/events`: the user's events, `privateExtendedProperty`
  (`name=value`, repeated: all must match) and `q` (free text in summary and description)
  filtering, `maxResults` (default 250, at most 2500), pages chained by `nextPageToken` until
  the last, which has none.
- `DELETE [/calendar/v3]/calendars/{calendarId}/events/{eventId}`: 204 with no body; an event
  deleted before is `410 Gone`, one never there `404`.
- `POST /batch/calendar/v3`: a multipart/mixed body of `application/http` parts, answered part
  by part (`Content-ID: <response-...>`), at most 1000 calls, each counted as a request.

Requests carry `Authorization: Bearer <access token>`; the token says whose calendar it is.
Faults: a share of calls answered `429`, `403 rateLimitExceeded` or `503`, by a seeded die, each
counted. With `api_endpoint` set, google-api-python-client sends paths without `/calendar/v3`:
both forms are served.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any

from cockpit.sandbox.loopback import loopback_server

MAX_RESULTS = 2500
MAX_BATCH = 1000


@dataclass
class Faults:
    """A share of the API's calls (inside batches too) answered with a rate limit or a 503."""

    rate: float = 0.0
    seed: int = 7
    die: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.die = random.Random(self.seed)

    def roll(self) -> tuple[int, dict[str, Any]] | None:
        if not self.rate or self.die.random() >= self.rate:
            return None
        return self.die.choice(
            [
                (429, _error(429, "rateLimitExceeded", "Rate Limit Exceeded")),
                (403, _error(403, "rateLimitExceeded", "Rate Limit Exceeded")),
                (403, _error(403, "userRateLimitExceeded", "User Rate Limit Exceeded")),
                (503, _error(503, "backendError", "Backend Error")),
            ]
        )


def _error(code: int, reason: str, message: str) -> dict[str, Any]:
    """Google's error body: `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`."""
    domain = "usageLimits" if "RateLimit" in reason or reason == "rateLimitExceeded" else "global"
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"domain": domain, "reason": reason, "message": message}],
        }
    }


@dataclass
class CalendarUser:
    email: str
    refresh_token: str
    revoked: bool = False
    access_tokens: set[str] = field(default_factory=set)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> event, in creation order
    deleted: set[str] = field(default_factory=set)


class CalendarStandIn:
    """`CalendarStandIn().start()`; `.url` is both the API's endpoint and the token endpoint's base."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.latency = 0.0  # seconds added to every HTTP request, as a network would
        self.users: dict[str, CalendarUser] = {}  # by email
        self.counts: Counter[str] = Counter()  # "list", "delete", "batch", "token", "fault", ...
        self._lock = threading.Lock()
        self._next_id = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}  # header names are any case
                status, headers, data = stand_in.serve(method, self.path, headers, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._answer("DELETE")

        self._httpd = loopback_server(Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="standin-calendar", daemon=True)

    # -- the world --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> CalendarStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_user(self, email: str, refresh_token: str | None = None, *, revoked: bool = False) -> CalendarUser:
        user = CalendarUser(email, refresh_token or "1//" + secrets.token_urlsafe(24), revoked)
        self.users[email] = user
        return user

    def add_event(self, email: str, summary: str, description: str = "", private: dict[str, str] | None = None) -> str:
        with self._lock:
            self._next_id += 1
            event_id = f"ev{self._next_id:07d}"
        event: dict[str, Any] = {
            "kind": "calendar#event",
            "id": event_id,
            "status": "confirmed",
            "summary": summary,
            "description": description,
            "start": {"date": "2027-01-15"},
            "end": {"date": "2027-01-16"},
        }
        if private:
            event["extendedProperties"] = {"private": dict(private)}
        self.users[email].events[event_id] = event
        return event_id

    def remaining(self, email: str) -> list[dict[str, Any]]:
        return list(self.users[email].events.values())

    # -- the protocol -----------------------------------------------------------------------------

    def serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.latency:
            time.sleep(self.latency)
        parts = urllib.parse.urlsplit(target)
        path = parts.path
        if method == "POST" and path == "/token":
            return self._token(body)
        if method == "POST" and path == "/batch/calendar/v3":
            return self._batch(headers, body)
        status, payload = self._call(method, path, parts.query, headers.get("authorization", ""), faulty=True)
        return _json_response(status, payload)

    def _token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        with self._lock:
            self.counts["token"] += 1
            if form.get("grant_type") != "refresh_token":
                return _json_response(400, {"error": "unsupported_grant_type"})
            user = next((u for u in self.users.values() if u.refresh_token == form.get("refresh_token")), None)
            if user is None or user.revoked:
                return _json_response(
                    400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                )
            token = "ya29." + secrets.token_urlsafe(24)
            user.access_tokens.add(token)
        return _json_response(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/calendar",
            },
        )

    def _user_of(self, authorization: str) -> CalendarUser | None:
        token = authorization.removeprefix("Bearer ").strip()
        return next((u for u in self.users.values() if token in u.access_tokens), None)

    def _call(self, method: str, path: str, query: str, authorization: str, *, faulty: bool) -> tuple[int, Any]:
        path = path.removeprefix("/calendar/v3")
        with self._lock:
            if faulty:
                fault = self.faults.roll()
                if fault is not None:
                    self.counts["fault"] += 1
                    return fault
            user = self._user_of(authorization)
            if user is None:
                return 401, _error(401, "authError", "Invalid Credentials")
            listing = re.fullmatch(r"/calendars/([^/]+)/events", path)
            one = re.fullmatch(r"/calendars/([^/]+)/events/([^/]+)", path)
            if method == "GET" and listing:
                self.counts["list"] += 1
                self.counts[f"list {user.email}"] += 1
                return 200, self._list(user, urllib.parse.parse_qs(query))
            if method == "DELETE" and one:
                self.counts["delete"] += 1
                event_id = urllib.parse.unquote(one.group(2))
                if event_id in user.events:
                    del user.events[event_id]
                    user.deleted.add(event_id)
                    return 204, None
                if event_id in user.deleted:
                    return 410, _error(410, "deleted", "Resource has been deleted")
                return 404, _error(404, "notFound", "Not Found")
            return 404, _error(404, "notFound", f"no route {method} {path}")

    def _list(self, user: CalendarUser, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = [tuple(p.split("=", 1)) for p in query.get("privateExtendedProperty", []) if "=" in p]
        text = (query.get("q") or [""])[0].lower()
        size = min(int((query.get("maxResults") or ["250"])[0]), MAX_RESULTS)
        start = int((query.get("pageToken") or ["0"])[0])
        matching = [
            e
            for e in user.events.values()
            if all((e.get("extendedProperties") or {}).get("private", {}).get(k) == v for k, v in wanted)
            and (not text or text in (e["summary"] + " " + e["description"]).lower())
        ]
        page = matching[start : start + size]
        answer: dict[str, Any] = {"kind": "calendar#events", "summary": user.email, "items": page}
        if start + size < len(matching):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _batch(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        content_type = headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        with self._lock:
            self.counts["batch"] += 1
        if not parts or len(parts) > MAX_BATCH:
            return _json_response(400, _error(400, "badRequest", f"a batch holds 1 to {MAX_BATCH} calls"))
        boundary = "batch_" + secrets.token_hex(8)
        out: list[str] = []
        for part in parts:
            inner = part.get_payload(decode=True)
            request_line, _, rest = (inner if isinstance(inner, bytes) else b"").decode().partition("\n")
            method, target, _version = request_line.strip().split(" ", 2)
            inner_headers = BytesParser(policy=HTTP).parsebytes(rest.encode())
            split = urllib.parse.urlsplit(target)
            status, payload = self._call(
                method, split.path, split.query, inner_headers.get("Authorization", ""), faulty=True
            )
            data = b"" if payload is None else json.dumps(payload).encode()
            reason = {
                200: "OK",
                204: "No Content",
                401: "Unauthorized",
                403: "Forbidden",
                404: "Not Found",
                410: "Gone",
                429: "Too Many Requests",
                503: "Service Unavailable",
            }.get(status, "Error")
            content_id = str(part.get("Content-ID", "")).strip("<>")
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id}>\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
                f"Content-Length: {len(data)}\r\n\r\n{data.decode()}\r\n"
            )
        text = "".join(out) + f"--{boundary}--\r\n"
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, text.encode()


def _json_response(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    data = b"" if payload is None else json.dumps(payload).encode()
    return status, {"Content-Type": "application/json; charset=UTF-8"}, data
