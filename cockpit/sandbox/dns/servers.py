"""Real DNS servers on loopback for the demo and the tests: Knot (authoritative, RFC 2136 with
TSIG) and dnsmasq (caching resolvers, or fixed answers), plus two misbehaving resolvers that
no real server imitates on demand: one that never answers and one that answers SERVFAIL.

Each server gets its own address in 127.0.0.0/8 and a free high port, so nothing needs root or
port 53. `stop()` ends the process and removes what it wrote.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.parent_death import dying_with_parent
from cockpit.sandbox.leftovers import claim
from cockpit.sandbox.postgres import SandboxError


def free_port_on(address: str) -> int:
    """A port free for both UDP and TCP on this address (DNS answers over both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
                return port
    raise SandboxError(f"no free port on {address}")


def _binary(name: str, package: str) -> str:
    for folder in (None, "/usr/sbin", "/usr/local/sbin"):
        found = shutil.which(name, path=folder) if folder else shutil.which(name)
        if found:
            return found
    raise SandboxError(f"{name} is not installed: apt-get install {package} (the DNS sandbox runs it on loopback)")


def _wait_answering(
    address: str,
    port: int,
    process: subprocess.Popen[bytes] | None,
    what: str,
    log: Path | None,
    deadline_s: float = 10.0,
) -> None:
    """Poll with a tiny SOA query until the server answers anything at all."""
    import dns.exception
    import dns.message
    import dns.query

    query = dns.message.make_query(".", "SOA")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            detail = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
            raise SandboxError(f"{what} exited with {process.returncode}: {detail.strip()}")
        try:
            dns.query.udp(query, address, port=port, timeout=0.05)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.02)
    raise SandboxError(f"{what} did not answer on {address}:{port} within {deadline_s:.0f}s")


def _launch(args: list[str], folder: Path, what: str, address: str, port: int) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, its output in `folder`, and wait until it answers."""
    log = folder / f"{what}.log"
    claim(folder)
    with log.open("wb") as out:
        process = subprocess.Popen(
            dying_with_parent(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        _wait_answering(address, port, process, what, log)
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Record:
    name: str  # relative to the zone ("@" for the apex)
    rdtype: str
    value: str
    ttl: int = 300


@dataclass
class TsigKey:
    name: str
    secret: str  # base64
    algorithm: str = "hmac-sha256"

    @classmethod
    def generate(cls, name: str = "cutover") -> TsigKey:
        return cls(name, base64.b64encode(os.urandom(32)).decode())


@dataclass
class KnotServer:
    """knotd serving one zone from a zone file, accepting updates signed with `key`."""

    zone: str
    records: list[Record]
    key: TsigKey = field(default_factory=TsigKey.generate)
    address: str = "127.0.0.1"
    port: int = 0
    soa_minimum: int = 5
    folder: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> KnotServer:
        binary = _binary("knotd", "knot")
        self.port = self.port or free_port_on(self.address)
        self.folder = Path(tempfile.mkdtemp(prefix="cockpit-knot-"))
        zone = self.zone.rstrip(".")
        lines = [
            f"$ORIGIN {zone}.",
            "$TTL 300",
            f"@ 300 SOA ns1 hostmaster 1 3600 600 86400 {self.soa_minimum}",
            "@ 300 NS ns1",
            f"ns1 300 A {self.address}",
        ]
        lines += [f"{r.name} {r.ttl} {r.rdtype} {r.value}" for r in self.records]
        (self.folder / f"{zone}.zone").write_text("\n".join(lines) + "\n")
        (self.folder / "db").mkdir()
        (self.folder / "knot.conf").write_text(f"""server:
    listen: {self.address}@{self.port}
    rundir: {self.folder}
database:
    storage: {self.folder}/db
key:
  - id: {self.key.name}
    algorithm: {self.key.algorithm}
    secret: {self.key.secret}
acl:
  - id: update
    key: {self.key.name}
    action: update
template:
  - id: default
    storage: {self.folder}
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: {zone}
    file: {zone}.zone
    acl: update
log:
  - target: stderr
    any: info
""")
        try:
            self.process = _launch(
                [binary, "-c", str(self.folder / "knot.conf")], self.folder, "knotd", self.address, self.port
            )
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> KnotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Dnsmasq:
    """A dnsmasq resolver: it forwards `zone` to an upstream and caches (each answer for at most
    `max_cache_ttl` seconds), and answers `fixed` names itself, as a filtering resolver does."""

    address: str
    zone: str | None = None
    upstream: str | None = None  # "address:port"
    max_cache_ttl: int | None = None
    fixed: dict[str, str] = field(default_factory=dict)  # name -> IPv4 address
    cache: bool = True  # False: every query goes upstream (no cache at all)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    def start(self) -> Dnsmasq:
        binary = _binary("dnsmasq", "dnsmasq-base")
        self.port = self.port or free_port_on(self.address)
        self.folder = Path(tempfile.mkdtemp(prefix="cockpit-dnsmasq-"))
        # The pid file is never written (-k keeps it in the foreground); naming it puts the folder
        # on the command line, where a later sandbox finds a server this one left running.
        args = [
            binary,
            "-k",
            "--conf-file=/dev/null",
            f"--listen-address={self.address}",
            f"--port={self.port}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--pid-file={self.folder}/dnsmasq.pid",
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            args.append("--user=nobody")
        if self.zone and self.upstream:
            host, _, port = self.upstream.rpartition(":")
            args.append(f"--server=/{self.zone.rstrip('.')}/{host}#{port}")
        if not self.cache:
            args.append("--cache-size=0")
        if self.max_cache_ttl is not None:
            args.append(f"--max-cache-ttl={self.max_cache_ttl}")
        for name, value in self.fixed.items():
            args.append(f"--address=/{name.rstrip('.')}/{value}")
        try:
            self.process = _launch(args, self.folder, "dnsmasq", self.address, self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class _UdpResponder:
    """A UDP socket served by a thread; `answer` turns a query's bytes into a reply, or None."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.address = address
        self.port = port or free_port_on(address)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((address, self.port))
        self._socket.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dns-{address}", daemon=True)

    def answer(self, data: bytes) -> bytes | None:
        raise NotImplementedError

    def start(self) -> _UdpResponder:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._socket.sendto(reply, peer)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._socket.close()


class SilentResolver(_UdpResponder):
    """Reads every query and never answers: a resolver lost behind a firewall."""

    def answer(self, data: bytes) -> bytes | None:
        return None


class ServfailResolver(_UdpResponder):
    """Answers every query with SERVFAIL: a resolver whose upstream is broken."""

    def answer(self, data: bytes) -> bytes | None:
        import dns.message
        import dns.rcode

        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - garbage in, silence out
            return None
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply.to_wire()


def stop_all(servers: Iterable[KnotServer | Dnsmasq | _UdpResponder]) -> None:
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()
