"""`calendar.cleanup`: delete the events v1 put in its users' Google Calendars (T+24h).

For each user who connected a calendar, with google-api-python-client: the user's refresh
token buys an access token, `events.list` finds v1's events (by a private extended property
v1 set, or the marker text the seed's script searched for) page after page to the last, and
`events.delete` removes them in batches (`BatchHttpRequest` at the connection's batch URL).

A batch does not retry its failed calls: the rate-limited ones (429, 403 rateLimitExceeded or
userRateLimitExceeded) and 5xx are batched again after an exponential backoff with jitter;
404 and 410 mean already gone. A revoked token (`invalid_grant`) is recorded and the user
skipped. Each user's outcome is in the checkpoint when the user is done, so a rerun visits
only the users not finished; a user interrupted halfway is listed again, and only what is
still there is deleted. A dry run lists what would be deleted.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, model_validator

from cockpit.step_api import ConnectionRef, Duration, Effect, Step, StepContext, StepFailed, StepParams
from steps.calendar.users import CalendarOwner, read_owners
from steps.postgres.audit import mask

RATE_LIMITED = {"rateLimitExceeded", "userRateLimitExceeded"}
GOOGLE_ENDPOINT = "https://www.googleapis.com/calendar/v3/"


class CleanupParams(StepParams):
    connection: Annotated[str, ConnectionRef("google_calendar")]
    users_connection: Annotated[str, ConnectionRef("postgres")]
    users_sql: str = Field(description="returns user_id, email and refresh_token")
    fernet_key: str | None = Field(default=None, description="the key v1 encrypted refresh tokens with; ${VAR}")
    calendar_id: str = "primary"
    private_property: str | None = Field(default=None, description='"name=value" v1 set on its events')
    marker: str | None = Field(default=None, description="text v1 wrote in each event (a `q` search)")
    batch_size: int = Field(default=50, ge=1, le=1000)
    page_size: int = Field(default=250, ge=1, le=2500)
    attempts: int = Field(default=6, ge=1, le=20, description="tries of a rate-limited call")
    backoff: Duration = Field(default=timedelta(seconds=1), description="the first wait; doubled each time")
    max_failed_users: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_selector(self) -> CleanupParams:
        if (self.private_property is None) == (self.marker is None):
            raise ValueError("say which events are v1's: private_property or marker, one of them")
        if self.private_property is not None and "=" not in self.private_property:
            raise ValueError(f"private_property {self.private_property!r} is not name=value")
        return self


class CleanupStep(Step[CleanupParams]):
    """Deletes v1's calendar events, user by user; a mutation of the users' calendars."""

    kind = "calendar.cleanup"
    effect = Effect.MUTATE
    Params = CleanupParams
    resumes = True
    dry_runs = True

    def describe(self, params: CleanupParams) -> str:
        which = params.private_property or f"text {params.marker!r}"
        return f"delete the events marked {which} from the calendars of the users of {params.users_connection!r}"

    def run(self, ctx: StepContext[CleanupParams]) -> None:
        params = ctx.params
        owners = read_owners(ctx, params.users_connection, params.users_sql, params.fernet_key)
        outcomes: dict[str, dict[str, Any]] = dict(ctx.checkpoint.get("users", {}))
        todo = [o for o in owners if outcomes.get(o.user_id, {}).get("state") not in ("done", "revoked")]
        if len(todo) < len(owners):
            ctx.log(f"{len(owners) - len(todo):,} of {len(owners):,} users were finished before; the others now")
        else:
            ctx.log(f"{len(owners):,} users with a connected calendar")
        connection = ctx.connection(params.connection)
        for owner in todo:
            ctx.raise_if_cancelled()
            outcome = self._clean(ctx, connection, owner)
            outcomes[owner.user_id] = outcome
            if not ctx.dry_run:
                ctx.checkpoint["users"] = dict(outcomes)
            done = sum(1 for o in owners if o.user_id in outcomes)
            ctx.progress(done, len(owners), "users", "calendar cleanup")
        self._summarize(ctx, owners, outcomes)

    def _clean(self, ctx: StepContext[CleanupParams], connection: Any, owner: CalendarOwner) -> dict[str, Any]:
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        who = mask(owner.email) if owner.email else owner.user_id
        try:
            service = _service(connection, owner)
            events = self._events(ctx, service)
            if ctx.dry_run:
                titles = ", ".join(repr(e.get("summary", "")) for e in events[:3])
                ctx.log(f"{who}: would delete {len(events)} events" + (f" ({titles}, ...)" if events else ""))
                return {"state": "done", "deleted": 0, "would_delete": len(events)}
            counts = self._delete(ctx, service, [e["id"] for e in events])
        except RefreshError as exc:
            reason = str(exc.args[0]) if exc.args else str(exc)
            if "invalid_grant" in reason:
                ctx.log(f"{who}: the refresh token was revoked (invalid_grant); skipped")
                return {"state": "revoked", "why": "invalid_grant"}
            ctx.log(f"{who}: the token could not be refreshed: {reason}")
            return {"state": "failed", "why": f"token refresh: {reason}"}
        except HttpError as exc:
            ctx.log(f"{who}: {exc.status_code} {_reason(exc) or ''} when listing: {exc.reason}")
            return {"state": "failed", "why": f"HTTP {exc.status_code} {_reason(exc) or exc.reason}"}
        except GiveUp as exc:
            ctx.log(f"{who}: {exc}")
            return {"state": "failed", "why": str(exc)}
        gone = counts["gone"]
        ctx.log(f"{who}: {counts['deleted']} events deleted" + (f" ({gone} were gone already)" if gone else ""))
        return {"state": "done", "deleted": counts["deleted"], "gone": gone}

    def _events(self, ctx: StepContext[CleanupParams], service: Any) -> list[dict[str, Any]]:
        """Every matching event, page after page until a page has no nextPageToken."""
        params = ctx.params
        query: dict[str, Any] = {"calendarId": params.calendar_id, "maxResults": params.page_size, "showDeleted": False}
        if params.private_property is not None:
            query["privateExtendedProperty"] = params.private_property
        else:
            query["q"] = params.marker
        found: list[dict[str, Any]] = []
        token = None
        while True:
            ctx.raise_if_cancelled()
            page = service.events().list(**query, pageToken=token).execute(num_retries=params.attempts)
            found += [e for e in page.get("items", []) if e.get("status") != "cancelled"]
            token = page.get("nextPageToken")
            if not token:
                return found

    def _delete(self, ctx: StepContext[CleanupParams], service: Any, event_ids: list[str]) -> Counter[str]:
        from googleapiclient.http import BatchHttpRequest

        params = ctx.params
        counts: Counter[str] = Counter()
        pending = list(event_ids)
        wait = params.backoff.total_seconds()
        batch_uri = _batch_uri(ctx.connection(params.connection))
        for attempt in range(1, params.attempts + 1):
            again: list[str] = []
            failed: list[str] = []

            def answered(
                request_id: str, _response: Any, error: Any, again: list[str] = again, failed: list[str] = failed
            ) -> None:
                if error is None:
                    counts["deleted"] += 1
                elif error.status_code in (404, 410):
                    counts["gone"] += 1
                elif error.status_code == 429 or error.status_code >= 500 or _reason(error) in RATE_LIMITED:
                    again.append(request_id)
                else:
                    failed.append(f"{request_id}: HTTP {error.status_code} {_reason(error) or error.reason}")

            for start in range(0, len(pending), params.batch_size):
                ctx.raise_if_cancelled()
                batch = BatchHttpRequest(callback=answered, batch_uri=batch_uri)
                for event_id in pending[start : start + params.batch_size]:
                    batch.add(
                        service.events().delete(calendarId=params.calendar_id, eventId=event_id), request_id=event_id
                    )
                batch.execute()
            if failed:
                raise GiveUp(f"{len(failed)} events could not be deleted: {'; '.join(failed[:3])}")
            if not again:
                return counts
            counts["retried"] += len(again)
            if attempt == params.attempts:
                break
            # Exponential backoff with jitter, in real seconds: the API's quota is a real minute.
            pause = wait * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if ctx.cancel.wait(pause):
                ctx.raise_if_cancelled()
            pending = again
        raise GiveUp(f"{len(again)} events still rate-limited after {params.attempts} tries")

    @staticmethod
    def _summarize(ctx: StepContext[CleanupParams], owners: list[CalendarOwner], outcomes: dict[str, Any]) -> None:
        states = Counter(o.get("state") for o in outcomes.values())
        deleted = sum(int(o.get("deleted", 0)) for o in outcomes.values())
        failed = {k: o["why"] for k, o in outcomes.items() if o.get("state") == "failed"}
        ctx.metric("calendar.users_done", states["done"])
        ctx.metric("calendar.users_revoked", states["revoked"])
        ctx.metric("calendar.users_failed", len(failed))
        ctx.metric("calendar.events_deleted", deleted)
        verb = "would delete" if ctx.dry_run else "deleted"
        events = sum(int(o.get("would_delete", 0)) for o in outcomes.values()) if ctx.dry_run else deleted
        ctx.log(
            f"{states['done']:,} of {len(owners):,} users done, {events:,} events {verb}; "
            f"{states['revoked']:,} with a revoked token (skipped), {len(failed):,} failed"
        )
        for user_id, why in list(failed.items())[:10]:
            ctx.log(f"  failed: user {user_id}: {why}")
        if len(failed) > ctx.params.max_failed_users:
            first = next(iter(failed.values()))
            raise StepFailed(f"{len(failed)} users failed ({first}, ...); a retry visits only the users not done")


class GiveUp(Exception):
    """A user whose events could not all be deleted: the reason is recorded, the others go on."""


def _service(connection: Any, owner: CalendarOwner) -> Any:
    import google_auth_httplib2
    import httplib2
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    credentials = Credentials(
        token=None,
        refresh_token=owner.refresh_token,
        token_uri=connection.token_uri,
        client_id=connection.client_id,
        client_secret=connection.client_secret,
    )
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=30))
    options = {"api_endpoint": connection.api_endpoint} if connection.api_endpoint else None
    return build("calendar", "v3", http=http, static_discovery=True, client_options=options, cache_discovery=False)


def _batch_uri(connection: Any) -> str:
    """The batch URL beside the API's endpoint: `new_batch_http_request()` would go to Google's
    whatever the endpoint, so the batch is built with this one."""
    from urllib.parse import urlsplit, urlunsplit

    endpoint = connection.api_endpoint or GOOGLE_ENDPOINT
    parts = urlsplit(endpoint)
    return urlunsplit((parts.scheme, parts.netloc, "/batch/calendar/v3", "", ""))


def _reason(error: Any) -> str | None:
    """The `reason` of Google's error body (rateLimitExceeded, ...), if it has one."""
    try:
        details = error.error_details
    except AttributeError:
        return None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return str(details[0].get("reason") or "") or None
    return None
