"""DNS names, record types and values as the operator writes them, checked and made canonical.

Values are compared as dnspython rdata, never as text: `198.51.100.7` and `cname.vercel-dns.com`
(made absolute) match what a server answers whatever its spelling or case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

# The types a cutover changes and checks. Others exist, but a typo of one of these is likelier.
RECORD_TYPES = ("A", "AAAA", "CNAME", "ALIAS", "TXT", "MX", "NS", "CAA", "SRV", "HTTPS")
_LABEL = re.compile(r"^(\*|_?[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?|_?[A-Za-z0-9])$")


class BadRecord(ValueError):
    """A name, type or value that cannot be a DNS record; the message says which and why."""


def check_name(text: str) -> str:
    """A fully qualified DNS name without its final dot, lower-cased; BadRecord when invalid."""
    name = text.strip().rstrip(".").lower()
    if not name:
        raise BadRecord(f"{text!r} is not a DNS name: it is empty")
    if " " in name or ".." in name:
        raise BadRecord(f"{text!r} is not a DNS name: it holds a space or an empty label")
    try:
        parsed = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise BadRecord(f"{text!r} is not a DNS name: {exc}") from None
    for label in name.split("."):
        if not _LABEL.match(label):
            raise BadRecord(
                f"{text!r} is not a DNS name: label {label!r} may hold only letters, digits "
                "and hyphens, up to 63, and may not start or end with a hyphen"
            )
    if len(parsed.to_wire() or b"") > 255:
        raise BadRecord(f"{text!r} is not a DNS name: longer than 255 bytes")
    return name


def check_type(text: str) -> str:
    kind = text.strip().upper()
    if kind not in RECORD_TYPES:
        raise BadRecord(f"unknown record type {text!r}; one of: {', '.join(RECORD_TYPES)}")
    return kind


def wire_type(kind: str) -> dns.rdatatype.RdataType:
    """ALIAS is a provider's flattened CNAME: resolvers see A records."""
    return dns.rdatatype.from_text("A" if kind == "ALIAS" else kind)


def parse_value(kind: str, text: str) -> dns.rdata.Rdata:
    """One value as rdata (relative names made absolute); BadRecord when it is not one."""
    kind = "A" if kind == "ALIAS" and re.match(r"^[0-9.]+$", text.strip()) else kind
    if kind == "ALIAS":
        kind = "CNAME"
    value = text.strip()
    if kind == "TXT" and not value.startswith('"'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(kind), value, origin=dns.name.root)
    except (dns.exception.DNSException, ValueError) as exc:
        raise BadRecord(f"{text!r} is not a valid {kind} value: {exc}") from None


def parse_values(kind: str, values: str | Iterable[str]) -> frozenset[dns.rdata.Rdata]:
    items = [values] if isinstance(values, str) else list(values)
    if not items:
        raise BadRecord("no value given")
    return frozenset(parse_value(kind, v) for v in items)


def show(value: dns.rdata.Rdata) -> str:
    """A value as the operator wrote it: names without the final dot, TXT without quotes."""
    if value.rdtype == dns.rdatatype.TXT:
        return b"".join(value.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    text = value.to_text()
    return text[:-1] if text.endswith(".") and text != "." else text


def split_address(text: str, default_port: int = 53) -> tuple[str, int]:
    """`127.0.0.1`, `127.0.0.1:5353` or `[::1]:5353` -> (address, port); BadRecord when not one."""
    import ipaddress

    value = text.strip()
    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise BadRecord(f"{text!r} is not an address[:port]")
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        if not port_text.isdigit():
            raise BadRecord(f"{text!r} is not an address[:port]: the port is not a number")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadRecord(f"{text!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise BadRecord(f"{text!r}: port {port} is out of range")
    return host, port
