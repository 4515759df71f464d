"""`${VAR}` references and the redaction of every value they resolve to.

A runbook names secrets by reference (`dsn = "${V1_DATABASE_URL}"`); the value comes from
the environment when a run needs it. Every resolved value is registered with a `Redactor`,
and every text that leaves the engine (log lines, events, journal rows, reports) passes
through it, so a secret never reaches the screen or the disk.

An address is the exception: a connection's URL or DSN (`ADDRESS_FIELDS`) is registered by the
credentials inside it (its password, its query's values), not whole, so that the operator can
still read which host a check reached, v1's or v2's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# Connection fields that say where to connect rather than hold a secret.
ADDRESS_FIELDS = frozenset({"dsn", "url", "base_url", "api_url", "api_endpoint", "token_uri", "host", "primary"})
# Connection fields that hold no secret at all, whatever their value: where a server is and who
# the cockpit is to it. A log that names them says which server refused which account.
PLAIN_FIELDS = frozenset(
    {
        "host",
        "port",
        "username",
        "sender",
        "zone",
        "primary",
        "client_id",
        "tls",
        "rate",
        "provider",
        "zone_id",
        "team_id",
        "enabled",
    }
)
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "••••••"
# Shorter values would redact ordinary words ("on", "5432") all over the log.
_MIN_SECRET_LENGTH = 4


class UnsetVariable(KeyError):
    """A `${VAR}` reference whose variable is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"${{{self.name}}} is not set in the environment"


def references(value: Any) -> Iterator[str]:
    """Every variable name referenced anywhere inside `value` (strings, lists, dicts)."""
    if isinstance(value, str):
        for m in REFERENCE.finditer(value):
            yield m.group(1)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from references(v)


class Redactor:
    """Replaces every registered secret value in a text with a mask. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Register a secret value, and the password inside it when it is a URL."""
        self._register({value} | _credentials_in(value))

    def add_address(self, value: str) -> None:
        """Register the credentials inside an address (a URL's password and query values, a
        connection string's password); its host, port and path stay readable. A value that is
        neither a URL with a host nor a connection string is registered whole: it cannot be told
        from a secret."""
        try:
            parts = urlsplit(value)
            is_url = bool(parts.scheme and parts.netloc)
        except ValueError:
            is_url = False
        if not is_url and "=" not in value:
            self._register({value})
            return
        found = _credentials_in(value)
        if is_url:
            found |= {v for _, v in parse_qsl(parts.query) if v}
            if parts.fragment:
                found.add(parts.fragment)
        self._register(found)

    def _register(self, candidates: set[str]) -> None:
        with self._lock:
            before = len(self._secrets)
            self._secrets.update(c for c in candidates if len(c) >= _MIN_SECRET_LENGTH)
            if len(self._secrets) != before:
                # Longest first, so a secret that contains another is masked whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def deep(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value

    def __len__(self) -> int:
        return len(self._secrets)


def _credentials_in(value: str) -> set[str]:
    """The password inside a URL (as written and decoded) or a key=value connection string."""
    found: set[str] = set()
    try:
        parts = urlsplit(value)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
    except ValueError:
        pass
    # key=value connection strings ("host=... password=...") hide a password too.
    for m in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", value):
        found.add(m.group(1).strip("'"))
    return found


def resolve(
    value: Any, env: Mapping[str, str], redactor: Redactor | None = None, *, address: bool = False, plain: bool = False
) -> Any:
    """Substitute every `${VAR}` inside `value`; raise `UnsetVariable` for a missing one.

    Each substituted value is registered with `redactor`: it is a secret from now on (for an
    `address`, only the credentials inside it; for a `plain` field, nothing).
    """
    if isinstance(value, str):

        def substitute(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise UnsetVariable(name)
            secret = env[name]
            if redactor is not None and not plain:
                (redactor.add_address if address else redactor.add)(secret)
            return secret

        return REFERENCE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: resolve(v, env, redactor, address=address, plain=plain) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, env, redactor, address=address, plain=plain) for v in value]
    return value
