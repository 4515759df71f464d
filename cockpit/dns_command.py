"""`cockpit dns check`: a propagation check without a runbook, for the days before the window.

Exit codes: 0 the expected answer holds where the check requires it, 1 it does not (or the
authoritative servers cannot be found), 2 bad input.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from steps.dns.check.probe import State
from steps.dns.check.propagation import (
    DiscoveryError,
    Propagation,
    Requirement,
    ServerStatus,
    discover_authoritative,
)
from steps.dns.check.records import BadRecord, check_name, check_type, parse_values, show, split_address
from steps.dns.check.resolvers import BUILTIN, Resolver, ResolversFileError, load_resolvers

EXIT_HELD, EXIT_NOT_HELD, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True)
class CheckRequest:
    name: str
    kind: str
    expect: tuple[str, ...]
    old: tuple[str, ...] = ()
    resolvers_file: str | None = None
    authoritative: tuple[str, ...] = ()
    timeout: float = 2.0
    watch: bool = False
    interval: float = 5.0
    within: float | None = None
    require: float = 0.9
    as_json: bool = False


class BadInput(ValueError):
    pass


def build(request: CheckRequest) -> Propagation:
    """The check the request describes; BadInput naming what is wrong."""
    try:
        name = check_name(request.name)
        kind = check_type(request.kind)
        if not request.expect:
            raise BadInput("--expect VALUE is required")
        expect = parse_values(kind, request.expect)
        old = parse_values(kind, request.old) if request.old else None
        authoritative = [
            Resolver(name=f"auth {i + 1}", address=a, port=p)
            for i, (a, p) in enumerate(split_address(x) for x in request.authoritative)
        ]
    except BadRecord as exc:
        raise BadInput(str(exc)) from None
    if request.timeout <= 0:
        raise BadInput(f"--timeout must be more than 0 seconds, not {request.timeout:g}")
    if request.interval <= 0:
        raise BadInput(f"--interval must be more than 0 seconds, not {request.interval:g}")
    if not 0 <= request.require <= 1:
        raise BadInput(f"--require is a fraction from 0 to 1, not {request.require:g}")
    if request.resolvers_file is not None:
        try:
            resolvers = load_resolvers(Path(request.resolvers_file))
        except ResolversFileError as exc:
            raise BadInput(str(exc)) from None
    else:
        resolvers = list(BUILTIN)
    zone = None
    if not authoritative:
        try:
            zone, authoritative = discover_authoritative(name, resolvers, request.timeout)
        except DiscoveryError as exc:
            raise DiscoveryError(f"{exc}; name them with --authoritative ADDRESS") from None
    return Propagation(
        name,
        kind,
        expect,
        old=old,
        resolvers=resolvers,
        authoritative=authoritative,
        zone=zone,
        require=Requirement(resolvers=request.require),
        query_timeout=request.timeout,
    )


def _row(status: ServerStatus) -> str:
    answer = status.answer
    state = status.state.value if status.state else "-"
    if status.server.filtering:
        state += "*"
    values = ", ".join(sorted(show(v) for v in answer.values)) if answer else ""
    if answer and not values:
        values = answer.detail or ("(no record)" if answer.rcode == "NOERROR" else answer.rcode)
    ttl = "" if not answer or answer.ttl is None else str(answer.ttl)
    ms = "" if not answer else f"{answer.ms:.0f}"
    extra = f" serial {answer.serial}" if answer and answer.serial is not None else ""
    return (
        f"{status.server.name[:18]:<18} {status.server.where[:21]:<21} {state:<9} {values[:18]:<18} "
        f"{ttl:>6} {ms:>5}{extra}"
    )


def render(check: Propagation) -> list[str]:
    lines = [
        f"{check.name} {check.kind}, expecting {', '.join(sorted(show(v) for v in check.expect))}",
        f"{'resolver':<18} {'address':<21} {'state':<9} {'answer':<18} {'TTL':>6} {'ms':>5}",
    ]
    lines += [_row(s) for s in check.resolvers]
    if check.authoritative:
        lines.append("authoritative (recursion off)")
        lines += [_row(s) for s in check.authoritative]
    if any(s.server.filtering for s in check.resolvers):
        lines.append("* filtering resolver: shown, not counted")
    summary = check.summary()
    lines.append(summary.line())
    lines.append("holds" if summary.held else f"does not hold: {summary.reason}")
    return lines


def run_check(
    request: CheckRequest,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> int:
    try:
        check = build(request)
    except BadInput as exc:
        err(f"cockpit dns check: {exc}")
        return EXIT_INVALID
    except DiscoveryError as exc:
        err(f"cockpit dns check: {exc}")
        return EXIT_NOT_HELD
    stop = threading.Event()
    if request.watch and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    summary = check.check()
    if request.watch:
        previous = {id(s): s.state for s in [*check.resolvers, *check.authoritative]}
        err(f"{datetime.now().strftime('%H:%M:%S')} {summary.line()}")
        while not summary.held and not stop.is_set():
            if request.within is not None and time.monotonic() - started >= request.within:
                break
            if stop.wait(request.interval):
                break
            summary = check.check()
            for status in [*check.resolvers, *check.authoritative]:
                if previous[id(status)] != status.state and status.state is not None:
                    err(
                        f"{datetime.now().strftime('%H:%M:%S')} {status.server.name} ({status.server.where}): "
                        f"{previous[id(status)] or '-'} -> {status.state.value}"
                    )
                    previous[id(status)] = status.state
            err(f"{datetime.now().strftime('%H:%M:%S')} {summary.line()}")
    if request.as_json:
        out(json.dumps(check.to_json()))
    else:
        for line in render(check):
            out(line)
    return EXIT_HELD if summary.held else EXIT_NOT_HELD


__all__ = ["CheckRequest", "State", "run_check"]
