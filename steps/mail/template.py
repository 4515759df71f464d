"""A message's subject and body as templates: `{name}` fields, `{{` and `}}` for braces.

The fields a template may name are known before anything is sent: the recipient's (`email`,
`name`), the window's (when it starts and ends, in the runbook's zone and in UTC, and how long
it is), and the step's own `values`. A template that names any other field, or asks for an
attribute, an index or a format, is refused where it is written, so `cockpit check` finds it
weeks before the announcement goes out.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

RECIPIENT_FIELDS = ("email", "name")
WINDOW_FIELDS = ("runbook", "window_start", "window_start_utc", "window_end", "window_end_utc", "window_length")


class TemplateProblem(ValueError):
    """A template that cannot be rendered: the message says where and why."""


def fields_of(template: str, what: str) -> list[str]:
    """The field names a template uses, in order; TemplateProblem for anything else."""
    names: list[str] = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise TemplateProblem(f"{what}: {exc} (write {{{{ and }}}} for a brace)") from None
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if not field.isidentifier():
            shown = "{" + field + "}"
            raise TemplateProblem(f"{what}: {shown} is not a field name (a name such as {{name}})")
        if spec or conversion:
            raise TemplateProblem(f"{what}: {{{field}}} takes no format or conversion")
        names.append(field)
    return names


def check_template(template: str, what: str, known: set[str]) -> None:
    """Refuse a template naming a field that will not be there."""
    unknown = [name for name in fields_of(template, what) if name not in known]
    if unknown:
        raise TemplateProblem(
            f"{what} names {', '.join('{' + n + '}' for n in dict.fromkeys(unknown))}, which no message has;"
            f" the fields are {', '.join(sorted(known))}"
        )


def render(template: str, values: dict[str, str]) -> str:
    return template.format_map(values)


@dataclass(frozen=True)
class Window:
    """When the maintenance window is, as an announcement says it."""

    runbook: str
    start: datetime
    length: timedelta | None
    zone: tzinfo

    def fields(self) -> dict[str, str]:
        local = self.start.astimezone(self.zone)
        utc = self.start.astimezone(UTC)
        fields = {
            "runbook": self.runbook,
            "window_start": _spoken(local),
            "window_start_utc": _spoken(utc),
            "window_end": "",
            "window_end_utc": "",
            "window_length": _length(self.length) if self.length else "",
        }
        if self.length:
            fields["window_end"] = _spoken(local + self.length)
            fields["window_end_utc"] = _spoken(utc + self.length)
        return fields


def _spoken(moment: datetime) -> str:
    """Saturday 5 December 2026, 11:00 PM EST: a time no reader can take for another."""
    hour = moment.strftime("%I").lstrip("0")
    zone = moment.tzname() or moment.strftime("%z")
    if zone.startswith(("+", "-")) or zone.startswith("UTC") and len(zone) > 3:
        zone = "UTC" + moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]
    return f"{moment.strftime('%A')} {moment.day} {moment.strftime('%B %Y')}, {hour}:{moment.strftime('%M %p')} {zone}"


def _length(length: timedelta) -> str:
    minutes = int(length.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"
