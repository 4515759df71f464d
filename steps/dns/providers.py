"""Where a DNS change is made: RFC 2136 (TSIG-signed, to the zone's primary), Cloudflare, Vercel.

Each provider reads the current record set of one name and type (`current`), and makes it
equal to a list of values (`apply`), refusing when the set changed since it was read, so a
restore never overwrites someone else's change without saying so. Tokens and TSIG secrets come
from the connection, resolved from `${VAR}`; they never appear in messages.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from steps.dns.check.records import parse_values, show, split_address, wire_type


class ProviderError(RuntimeError):
    """The provider refused or could not be reached; the message says which, without secrets."""


@dataclass
class RecordSet:
    """The records of one name and type at the provider."""

    name: str
    type: str
    values: list[str] = field(default_factory=list)  # empty: no such record
    ttl: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # provider details kept on restore (proxied)

    @property
    def exists(self) -> bool:
        return bool(self.values)

    def same_values(self, other: RecordSet) -> bool:
        if not self.values or not other.values:
            return not self.values and not other.values
        return parse_values(self.type, self.values) == parse_values(other.type, other.values)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "values": self.values, "ttl": self.ttl, "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordSet:
        return cls(
            data["name"], data["type"], list(data.get("values") or []), data.get("ttl"), dict(data.get("extra") or {})
        )

    def describe(self) -> str:
        if not self.values:
            return f"{self.name} {self.type}: no record"
        return f"{self.name} {self.type} {', '.join(self.values)}" + (f" (TTL {self.ttl})" if self.ttl else "")


class DnsProvider(ABC):
    zone: str

    @abstractmethod
    def current(self, name: str, kind: str) -> RecordSet: ...

    @abstractmethod
    def apply(self, target: RecordSet, recorded: RecordSet) -> None:
        """Make the records of target.name/type equal target.values (none: delete them), provided
        they still equal `recorded`."""

    def close(self) -> None:
        return None

    def check_in_zone(self, name: str) -> None:
        if not dns.name.from_text(name).is_subdomain(dns.name.from_text(self.zone)):
            raise ProviderError(f"{name} is not in the zone {self.zone}")


# -- RFC 2136 -----------------------------------------------------------------------------------


class Rfc2136(DnsProvider):
    """Dynamic updates to the zone's primary over TCP, signed with TSIG."""

    def __init__(
        self,
        zone: str,
        primary: str,
        port: int,
        key_name: str | None,
        secret: str | None,
        algorithm: str,
        timeout: float = 5.0,
    ) -> None:
        self.zone = zone
        self.primary, self.port = split_address(primary, port)
        self.timeout = timeout
        self.keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self.key_name = key_name
        if secret is not None or key_name is not None:
            if not (secret and key_name):
                raise ProviderError("rfc2136 needs both tsig_name and tsig_secret, or neither")
            try:
                base64.b64decode(secret, validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError(f"the TSIG secret of key {key_name!r} is not base64") from None
            try:
                algorithm_name = dns.name.from_text(algorithm)
                self.keyring = {dns.name.from_text(key_name): dns.tsig.Key(key_name, secret, algorithm_name)}
            except (dns.exception.DNSException, ValueError, NotImplementedError) as exc:
                raise ProviderError(f"TSIG key {key_name!r}: {exc}") from None

    def _send(self, message: dns.message.Message) -> dns.message.Message:
        try:
            return dns.query.tcp(message, self.primary, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerBadKey:
            raise ProviderError(
                f"the primary {self.primary}:{self.port} does not know the TSIG key {self.key_name!r} (BADKEY)"
            ) from None
        except dns.tsig.PeerBadSignature:
            raise ProviderError(
                f"the primary {self.primary}:{self.port} rejected the signature of TSIG key "
                f"{self.key_name!r} (BADSIG): the secret is wrong"
            ) from None
        except dns.tsig.PeerError as exc:
            raise ProviderError(
                f"the primary {self.primary}:{self.port} rejected TSIG key {self.key_name!r}: {type(exc).__name__}"
            ) from None
        except dns.exception.Timeout:
            raise ProviderError(
                f"the primary {self.primary}:{self.port} did not answer within {self.timeout:g}s"
            ) from None
        except OSError as exc:
            raise ProviderError(
                f"cannot reach the primary {self.primary}:{self.port}: {exc.strerror or type(exc).__name__}"
            ) from None
        except dns.exception.DNSException as exc:
            raise ProviderError(f"the primary {self.primary}:{self.port} sent a bad answer: {exc}") from None

    def current(self, name: str, kind: str) -> RecordSet:
        self.check_in_zone(name)
        query = dns.message.make_query(name, wire_type(kind))
        query.flags &= ~dns.flags.RD
        response = self._send(query)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise ProviderError(
                f"the primary {self.primary}:{self.port} answered {dns.rcode.to_text(rcode)} "
                f"for {name} {kind}: cannot record the current value"
            )
        if not response.flags & dns.flags.AA:
            raise ProviderError(
                f"{self.primary}:{self.port} is not authoritative for {name}: is it the zone's primary?"
            )
        rrset = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, wire_type(kind))
        if rrset is None:
            return RecordSet(name, kind)
        return RecordSet(name, kind, sorted(show(v) for v in rrset), rrset.ttl)

    def apply(self, target: RecordSet, recorded: RecordSet) -> None:
        self.check_in_zone(target.name)
        rdtype = wire_type(target.type)
        update = dns.update.UpdateMessage(
            self.zone, keyring=self.keyring, keyname=dns.name.from_text(self.key_name) if self.key_name else None
        )
        name = dns.name.from_text(target.name)
        # Prerequisites (RFC 2136 3.2): the set is still exactly what was recorded, else nothing changes.
        if recorded.exists:
            values = parse_values(recorded.type, recorded.values)
            update.present(name, dns.rdataset.from_rdata_list(0, list(values)))  # prerequisites carry TTL 0
        else:
            update.absent(name, rdtype)
        if target.exists:
            update.replace(name, target.ttl or 300, *parse_values(target.type, target.values))
        else:
            update.delete(name, rdtype)
        response = self._send(update)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        meaning = {
            dns.rcode.NOTAUTH: "the key is not allowed to update this zone (NOTAUTH)",
            dns.rcode.REFUSED: "the primary refuses updates to this zone (REFUSED)",
            dns.rcode.NXRRSET: "the record changed since it was recorded (NXRRSET): nothing was changed",
            dns.rcode.YXRRSET: "the record changed since it was recorded (YXRRSET): nothing was changed",
            dns.rcode.NOTZONE: f"{target.name} is not in the zone {self.zone} (NOTZONE)",
        }.get(rcode, dns.rcode.to_text(rcode))
        raise ProviderError(f"update of {target.name} {target.type} at {self.primary}:{self.port} failed: {meaning}")
