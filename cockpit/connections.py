"""The connection kinds a runbook may declare under `[connections.NAME]`.

Each kind is a strict pydantic model. Values may hold `${VAR}` references; they are checked
as written by `cockpit check` and resolved (and registered as secrets) when a run starts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# A number, or a `${VAR}` that holds one (a port set per machine, as the sandbox's is): the
# reference is checked as written, and the number it resolves to when a run starts.
Reference = Annotated[str, Field(pattern=r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")]


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # The seed's fallback: `enabled = "${USE_CONVEX}"` switches v2 off without editing the
    # runbook. A step that targets a connection switched off is skipped, the reason journaled.
    enabled: bool | Reference = Field(default=True, description="false (or a ${VAR} that says so): steps skip it")


class PostgresConnection(_Connection):
    kind: Literal["postgres"]
    dsn: str = Field(description="libpq connection string or URL; usually ${VAR}")


class ConvexConnection(_Connection):
    kind: Literal["convex"]
    url: str = Field(description="deployment URL, e.g. https://happy-otter-123.convex.cloud")
    deploy_key: str = Field(description="deploy key sent as `Authorization: Convex <key>`; usually ${VAR}")


Port = Annotated[int, Field(ge=1, le=65535)] | Reference
Rate = Annotated[float, Field(gt=0, le=10_000)] | Reference


class SmtpConnection(_Connection):
    kind: Literal["smtp"]
    host: str
    port: Port = 587
    tls: Literal["starttls", "ssl", "none"] | Reference = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = Field(description="the From address of every message")
    rate: Rate = Field(default=10.0, description="messages per second the server takes from this account")


class DnsConnection(_Connection):
    kind: Literal["dns"]
    provider: Literal["rfc2136", "cloudflare", "vercel"]
    zone: str
    primary: str | None = Field(default=None, description="rfc2136: the zone's primary server address")
    port: int = 53
    tsig_name: str | None = None
    tsig_secret: str | None = None
    tsig_algorithm: str = "hmac-sha256"
    token: str | None = Field(default=None, description="cloudflare/vercel API token; usually ${VAR}")
    zone_id: str | None = None
    team_id: str | None = None
    api_url: str | None = Field(default=None, description="override of the provider's API base URL")


class GoogleCalendarConnection(_Connection):
    kind: Literal["google_calendar"]
    token: str | None = Field(default=None, description="OAuth access token; usually ${VAR}")
    credentials_file: str | None = None
    api_endpoint: str | None = Field(default=None, description="override of the API base URL")
    # The OAuth client the users' refresh tokens were issued to (v1's "Connect Google Calendar").
    client_id: str | None = None
    client_secret: str | None = Field(default=None, description="usually ${VAR}")
    token_uri: str = Field(default="https://oauth2.googleapis.com/token", description="where refresh tokens are spent")


class HttpConnection(_Connection):
    kind: Literal["http"]
    base_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = 10.0


Connection = (
    PostgresConnection | ConvexConnection | SmtpConnection | DnsConnection | GoogleCalendarConnection | HttpConnection
)

CONNECTION_KINDS: dict[str, type[_Connection]] = {
    "postgres": PostgresConnection,
    "convex": ConvexConnection,
    "smtp": SmtpConnection,
    "dns": DnsConnection,
    "google_calendar": GoogleCalendarConnection,
    "http": HttpConnection,
}
