"""The REST providers: Cloudflare (API v4) and Vercel, over httpx with a bearer token.

Both change a record set record by record: values kept stay (their TTL patched), values gone are
deleted or repointed, new values are created. Before writing, the set is read again and must
still equal what was recorded. The requests follow the providers' documentation (see
research/anchors-migration.md section 8); the tests run them against stand-ins of both APIs.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from steps.dns.check.records import parse_value
from steps.dns.providers import DnsProvider, ProviderError, RecordSet

RETRIES = 4


class _Rest(DnsProvider):
    service = ""

    def __init__(self, zone: str, token: str | None, base_url: str, timeout: float = 15.0) -> None:
        if not token:
            raise ProviderError(f'{self.service} needs an API token (token = "${{VAR}}" in the connection)')
        self.zone = zone
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call, retried on 429 (after Retry-After), 5xx and dropped connections."""
        delay = 0.5
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                # A lost answer to a POST may mean the record was created: never send it twice.
                # The step's retry reads the set again and continues from what is there.
                if attempt == RETRIES or method == "POST":
                    raise ProviderError(
                        f"cannot reach {self.service} at {self.client.base_url}: {type(exc).__name__}"
                    ) from None
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == RETRIES:
                    raise ProviderError(
                        f"{self.service} answered {response.status_code} to {method} {path} {RETRIES + 1} times"
                    )
                wait = response.headers.get("Retry-After")
                time.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else delay)
                delay *= 2
                continue
            if response.status_code in (401, 403):
                raise ProviderError(
                    f"{self.service} refused the token ({response.status_code}): {self._error_text(response)}"
                )
            if response.status_code >= 400:
                raise ProviderError(
                    f"{self.service} answered {response.status_code} to {method} {path}: {self._error_text(response)}"
                )
            return response.json() if response.content else {}
        raise AssertionError("unreachable")

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200]
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            error = body.get("error")
            if isinstance(error, dict):
                return str(error.get("message") or error)
        return str(body)[:200]

    @staticmethod
    def _guard(now: list[str], recorded: RecordSet, target: RecordSet) -> None:
        """Refuse unless every value there now is one recorded before or one being set: the
        latter happens when an earlier attempt was cut off halfway, and is continued."""
        allowed = {parse_value(target.type, v) for v in [*recorded.values, *target.values]}
        strangers = [v for v in now if parse_value(target.type, v) not in allowed]
        if strangers:
            raise ProviderError(
                f"{target.name} {target.type} changed since it was recorded (now holds "
                f"{', '.join(strangers)}): nothing was changed"
            )

    # Shared set arithmetic: records are (id, value, ttl) triples.
    def _plan(
        self, existing: list[dict[str, Any]], target: RecordSet
    ) -> tuple[list[tuple[str, str]], list[str], list[str], list[str]]:
        """(records to repoint as (id, new value), ids to delete, values to create, ids to re-TTL)."""

        def key(value: str) -> Any:
            return parse_value(target.type, value)

        wanted = {key(v): v for v in target.values}
        keep_ids, free = [], []
        for record in existing:
            k = key(record["value"])
            if k in wanted:
                keep_ids.append(record["id"])
                del wanted[k]
            else:
                free.append(record["id"])
        missing = list(wanted.values())
        repoint = list(zip(free, missing, strict=False))
        delete = free[len(repoint) :]
        create = missing[len(repoint) :]
        retitle = [record["id"] for record in existing if record["id"] in keep_ids and record["ttl"] != target.ttl]
        return repoint, delete, create, retitle


class Cloudflare(_Rest):
    service = "Cloudflare"

    def __init__(self, zone: str, zone_id: str | None, token: str | None, api_url: str | None) -> None:
        if not zone_id:
            raise ProviderError("cloudflare needs zone_id in the connection")
        super().__init__(zone, token, api_url or "https://api.cloudflare.com/client/v4")
        self.zone_id = zone_id

    def _records(self, name: str, kind: str) -> list[dict[str, Any]]:
        body = self._request(
            "GET", f"/zones/{self.zone_id}/dns_records", params={"type": kind, "name": name, "per_page": 100}
        )
        if not body.get("success", False):
            raise ProviderError(f"Cloudflare: {body.get('errors')}")
        return [
            {"id": r["id"], "value": r["content"], "ttl": r.get("ttl"), "proxied": r.get("proxied", False)}
            for r in body.get("result") or []
            if r.get("type") == kind and r.get("name") == name
        ]

    def current(self, name: str, kind: str) -> RecordSet:
        self.check_in_zone(name)
        records = self._records(name, kind)
        proxied = any(r["proxied"] for r in records)
        return RecordSet(
            name,
            kind,
            sorted(r["value"] for r in records),
            records[0]["ttl"] if records else None,
            {"proxied": proxied} if records else {},
        )

    def apply(self, target: RecordSet, recorded: RecordSet) -> None:
        existing = self._records(target.name, target.type)
        self._guard([r["value"] for r in existing], recorded, target)
        repoint, delete, create, retitle = self._plan(existing, target)
        ttl = target.ttl or 1  # 1 is Cloudflare's "automatic"
        proxied = bool(target.extra.get("proxied", False))
        base = f"/zones/{self.zone_id}/dns_records"
        for record_id, value in repoint:
            self._request("PATCH", f"{base}/{record_id}", json={"content": value, "ttl": ttl, "proxied": proxied})
        for record_id in retitle:
            self._request("PATCH", f"{base}/{record_id}", json={"ttl": ttl})
        for value in create:
            self._request(
                "POST",
                base,
                json={
                    "type": target.type,
                    "name": target.name,
                    "content": value,
                    "ttl": ttl,
                    "proxied": proxied,
                    "comment": "set by cutover cockpit",
                },
            )
        for record_id in delete:
            self._request("DELETE", f"{base}/{record_id}")


class Vercel(_Rest):
    service = "Vercel"

    def __init__(self, zone: str, team_id: str | None, token: str | None, api_url: str | None) -> None:
        super().__init__(zone, token, api_url or "https://api.vercel.com")
        self.params = {"teamId": team_id} if team_id else {}

    def _relative(self, name: str) -> str:
        zone = self.zone.rstrip(".")
        return "" if name == zone else name[: -len(zone) - 1]

    def _records(self, name: str, kind: str) -> list[dict[str, Any]]:
        relative, out, until = self._relative(name), [], None
        for _ in range(1000):  # pages of 100; a zone of 100,000 records is not a real one
            params = {**self.params, "limit": 100, **({"until": until} if until else {})}
            body = self._request("GET", f"/v5/domains/{self.zone}/records", params=params)
            for r in body.get("records") or []:
                if r.get("name") == relative and r.get("type") == kind:
                    out.append({"id": r["id"], "value": r["value"], "ttl": r.get("ttl")})
            until = (body.get("pagination") or {}).get("next")
            if not until:
                return out
        raise ProviderError(f"Vercel: the records of {self.zone} did not end after 1000 pages")

    def current(self, name: str, kind: str) -> RecordSet:
        self.check_in_zone(name)
        records = self._records(name, kind)
        return RecordSet(name, kind, sorted(r["value"] for r in records), records[0]["ttl"] if records else None)

    def apply(self, target: RecordSet, recorded: RecordSet) -> None:
        existing = self._records(target.name, target.type)
        self._guard([r["value"] for r in existing], recorded, target)
        repoint, delete, create, retitle = self._plan(existing, target)
        ttl = target.ttl or 60
        for record_id, value in repoint:
            self._request(
                "PATCH", f"/v1/domains/records/{record_id}", params=self.params, json={"value": value, "ttl": ttl}
            )
        for record_id in retitle:
            self._request("PATCH", f"/v1/domains/records/{record_id}", params=self.params, json={"ttl": ttl})
        for value in create:
            self._request(
                "POST",
                f"/v2/domains/{self.zone}/records",
                params=self.params,
                json={"name": self._relative(target.name), "type": target.type, "value": value, "ttl": ttl},
            )
        for record_id in delete:
            self._request("DELETE", f"/v2/domains/{self.zone}/records/{record_id}", params=self.params)
