"""Stand-ins of the two hosting APIs the decommission calls, from their published references:
Render's (`GET /v1/services/{serviceId}`, `POST /v1/services/{serviceId}/scale` with
`{"numInstances": n}`, answered 202) and Supabase's Management API (`GET /v1/projects/{ref}`,
`POST /v1/projects/{ref}/pause`, after which the project's `status` goes `PAUSING`, then
`INACTIVE`). Both take `Authorization: Bearer <token>` and answer 401 without the right one,
404 for a service or project they do not have. One server serves both, each under its own
path prefix (`/render`, `/supabase`), so each API's base URL is the server's URL and a prefix.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from cockpit.sandbox.loopback import loopback_server

# How many reads of a pausing project see PAUSING before it is INACTIVE: a pause takes minutes
# at Supabase, a few polls here.
PAUSING_READS = 2


@dataclass
class Providers:
    render_token: str = "rnd_sandbox_token_0123456789"
    supabase_token: str = "sbp_sandbox_token_0123456789"
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Told of each scale (service id, instances): the sandbox takes v1's web app down at zero.
    on_scale: Callable[[str, int], None] | None = None

    def __post_init__(self) -> None:
        providers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = providers.answer(method, self.path, self.headers.get("Authorization", ""), body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        self._httpd = loopback_server(Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="standin-providers", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Providers:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_service(self, service_id: str, name: str, instances: int = 1) -> None:
        self.services[service_id] = {
            "id": service_id,
            "name": name,
            "type": "web_service",
            "suspended": "not_suspended",
            "serviceDetails": {"numInstances": instances, "plan": "starter"},
        }

    def add_project(self, ref: str, name: str) -> None:
        self.projects[ref] = {"id": ref, "ref": ref, "name": name, "status": "ACTIVE_HEALTHY", "region": "us-east-1"}

    def answer(self, method: str, path: str, authorization: str, body: bytes) -> tuple[int, Any]:
        with self.lock:
            self.calls.append(f"{method} {path}")
            if path.startswith("/render/"):
                if authorization != f"Bearer {self.render_token}":
                    return 401, {"message": "unauthorized"}
                return self._render(method, path.removeprefix("/render"), body)
            if path.startswith("/supabase/"):
                if authorization != f"Bearer {self.supabase_token}":
                    return 401, {"message": "Unauthorized"}
                return self._supabase(method, path.removeprefix("/supabase"))
            return 404, {"message": "not found"}

    def _render(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        match = re.fullmatch(r"/v1/services/([^/]+)(/scale)?", path)
        service = self.services.get(match.group(1)) if match else None
        if match is None or service is None:
            return 404, {"message": "service not found"}
        if method == "GET" and match.group(2) is None:
            return 200, service
        if method == "POST" and match.group(2):
            try:
                instances = json.loads(body or b"{}")["numInstances"]
            except (ValueError, KeyError, TypeError):
                return 400, {"message": "numInstances is required"}
            if not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
                return 400, {"message": "numInstances must be a non-negative integer"}
            service["serviceDetails"]["numInstances"] = instances
            if self.on_scale is not None:
                self.on_scale(match.group(1), instances)
            return 202, None
        return 405, {"message": "method not allowed"}

    def _supabase(self, method: str, path: str) -> tuple[int, Any]:
        match = re.fullmatch(r"/v1/projects/([^/]+)(/pause)?", path)
        project = self.projects.get(match.group(1)) if match else None
        if match is None or project is None:
            return 404, {"message": "Project not found"}
        if method == "GET" and match.group(2) is None:
            if project["status"] == "PAUSING":
                project["_reads"] = project.get("_reads", 0) + 1
                if project["_reads"] > PAUSING_READS:
                    project["status"] = "INACTIVE"
            return 200, {k: v for k, v in project.items() if not k.startswith("_")}
        if method == "POST" and match.group(2):
            if project["status"] != "ACTIVE_HEALTHY":
                return 400, {"message": f"Project is {project['status']}: only an active project can be paused"}
            project["status"] = "PAUSING"
            return 200, None
        return 405, {"message": "method not allowed"}
