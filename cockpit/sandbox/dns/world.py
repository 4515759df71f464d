"""The DNS of the rehearsal: an authoritative server, resolvers that lag, and the provider's API.

- Knot serves `permtracker.test` at 127.0.53.1; `app.permtracker.test` points at v1.
- The Vercel stand-in (the provider `runbook.toml` names) holds the same records and mirrors
  every change into Knot as a TSIG-signed RFC 2136 update, as the real provider publishes to its
  name servers.
- Five dnsmasq resolvers forward the zone to Knot and cache each answer for at most 2, 4, 6, 8
  and 10 seconds (the TTL the runbook sets at T-2d; 30 before): after the cutover each switches
  at its own time. A sixth
  filters on purpose, one never answers and one answers SERVFAIL.
- A traffic thread asks every caching resolver for the name each second, as users' browsers
  do, so their caches hold the old answer when the cutover comes.

Addresses and the port are fixed, so `migration/sandbox-resolvers.toml` can list them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.sandbox.dns.provider_apis import StoredRecord, VercelStandIn
from cockpit.sandbox.dns.servers import Dnsmasq, KnotServer, Record, ServfailResolver, SilentResolver, stop_all
from cockpit.sandbox.postgres import SandboxError

PORT = 53530
ZONE = "permtracker.test"
NAME = "app.permtracker.test"
V1_ADDRESS = "192.0.2.10"  # v1 on Vercel
V2_ADDRESS = "198.51.100.20"  # v2
TTL = 30  # v1's record before the go-live; the runbook lowers it to 10 at T-2d
AUTHORITATIVE = "127.0.53.1"


@dataclass(frozen=True)
class SandboxResolver:
    name: str
    address: str
    behaviour: str  # caching | filtering | silent | servfail
    cache_cap: int | None = None


RESOLVERS = (
    SandboxResolver("Google", "127.0.53.2", "caching", 2),
    SandboxResolver("Cloudflare", "127.0.53.3", "caching", 4),
    SandboxResolver("Quad9", "127.0.53.4", "caching", 6),
    SandboxResolver("OpenDNS", "127.0.53.5", "caching", 8),
    SandboxResolver("Comodo", "127.0.53.6", "caching", None),
    SandboxResolver("AdGuard", "127.0.53.7", "filtering"),
    SandboxResolver("Lost", "127.0.53.8", "silent"),
    SandboxResolver("Broken", "127.0.53.9", "servfail"),
)


def _check_free(addresses: list[str]) -> None:
    """Fail at once, and say why, when another sandbox (another `cockpit demo`) holds the port."""
    import socket

    for address in addresses:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind((address, PORT))
                except OSError as exc:
                    raise SandboxError(
                        f"the DNS sandbox needs {address}:{PORT}, which is taken ({exc.strerror}): "
                        "is another `cockpit demo` running?"
                    ) from None


class DnsSandbox:
    """With `saved`, the provider's records are kept in that file: a demo that continues a
    rehearsal finds the record where the last one left it (v2's address after the cutover)."""

    def __init__(self, saved: Path | None = None) -> None:
        self.saved = saved
        self.knot: KnotServer | None = None
        self.vercel: VercelStandIn | None = None
        self.servers: list[Any] = []
        self._stopping = threading.Event()
        self._traffic: threading.Thread | None = None
        self._mirror_lock = threading.Lock()

    def start(self) -> DnsSandbox:
        _check_free([AUTHORITATIVE, *(r.address for r in RESOLVERS)])
        records = self._load()
        try:
            published = [Record(r.name, r.type, r.value, ttl=r.ttl) for r in records if r.name == "app"]
            self.knot = KnotServer(ZONE, published, address=AUTHORITATIVE, port=PORT).start()
            for resolver in RESOLVERS:
                server: Any
                if resolver.behaviour == "caching":
                    server = Dnsmasq(
                        resolver.address,
                        zone=ZONE,
                        upstream=self.knot.where,
                        max_cache_ttl=resolver.cache_cap,
                        port=PORT,
                    ).start()
                elif resolver.behaviour == "filtering":
                    server = Dnsmasq(resolver.address, fixed={NAME: "0.0.0.0"}, port=PORT).start()
                elif resolver.behaviour == "silent":
                    server = SilentResolver(resolver.address, port=PORT).start()
                else:
                    server = ServfailResolver(resolver.address, port=PORT).start()
                self.servers.append(server)
            self.vercel = VercelStandIn(domain=ZONE)
            self.vercel.records = records
            self.vercel.on_change = self._changed
            self.vercel.start()
            self._traffic = threading.Thread(target=self._browse, name="dns-traffic", daemon=True)
            self._traffic.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def env(self) -> dict[str, str]:
        assert self.vercel is not None
        return {"VERCEL_API_URL": self.vercel.url, "VERCEL_TOKEN": self.vercel.token}

    def _load(self) -> list[StoredRecord]:
        if self.saved is not None and self.saved.exists():
            return [StoredRecord(**r) for r in json.loads(self.saved.read_text())]
        return [StoredRecord("rec_app_v1", "app", "A", V1_ADDRESS, TTL)]

    def _changed(self, records: list[StoredRecord]) -> None:
        self._mirror(records)
        if self.saved is not None:
            partial = self.saved.with_name(self.saved.name + ".partial")
            partial.write_text(json.dumps([dataclasses.asdict(r) for r in records]))
            os.replace(partial, self.saved)

    def _mirror(self, records: list[StoredRecord]) -> None:
        """Publish the provider's records of `app` to the authoritative server (RFC 2136)."""
        import dns.query
        import dns.tsigkeyring
        import dns.update

        assert self.knot is not None
        with self._mirror_lock:
            keyring = dns.tsigkeyring.from_text({self.knot.key.name: self.knot.key.secret})
            update = dns.update.UpdateMessage(ZONE, keyring=keyring)
            mine = [r for r in records if r.name == "app" and r.type == "A"]
            update.delete("app", "A")
            for record in mine:
                update.add("app", record.ttl, "A", record.value)
            dns.query.tcp(update, self.knot.address, port=self.knot.port, timeout=5)

    def _browse(self) -> None:
        import dns.message
        import dns.query

        while not self._stopping.wait(1.0):
            for resolver in RESOLVERS:
                if resolver.behaviour != "caching":
                    continue
                with contextlib.suppress(Exception):
                    dns.query.udp(dns.message.make_query(NAME, "A"), resolver.address, port=PORT, timeout=0.5)

    def stop(self) -> None:
        self._stopping.set()
        if self._traffic is not None:
            self._traffic.join(timeout=3)
        if self.vercel is not None:
            self.vercel.stop()
        stop_all(self.servers)
        self.servers = []
        if self.knot is not None:
            self.knot.stop()
            self.knot = None
