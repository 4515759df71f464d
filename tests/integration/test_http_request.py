"""http.request against the stand-ins of Render's and Supabase's APIs: the decommission's two
calls, the wait for the pause, metrics from the answer, refusals, and a call never sent twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from datapath import log_of
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.sandbox.providers import Providers

pytestmark = pytest.mark.integration

APIS = """
[connections.render]
kind = "http"
base_url = "${RENDER_API}"
headers = { Authorization = "Bearer ${RENDER_API_KEY}" }

[connections.supabase]
kind = "http"
base_url = "${SUPABASE_API}"
headers = { Authorization = "Bearer ${SUPABASE_ACCESS_TOKEN}" }
"""


def step(step_id: str, with_: str) -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "http.request"\n\n[step.with]\n{with_}\n'


SCALE = step(
    "render-off",
    'connection = "render"\nurl = "/v1/services/srv-v1api/scale"\njson = { numInstances = 0 }\n'
    "expect_status = 202\n"
    '[step.with.poll]\nurl = "/v1/services/srv-v1api"\njson_path = "$.serviceDetails.numInstances"\nequals = 0\n'
    'interval = "1s"\nwithin = "1m"\n',
)
PAUSE = step(
    "supabase-off",
    'connection = "supabase"\nurl = "/v1/projects/abcdefghij/pause"\nexpect_status = 200\n'
    "[step.with.poll]\n"
    'url = "/v1/projects/abcdefghij"\njson_path = "$.status"\nequals = "INACTIVE"\ninterval = "10s"\nwithin = "10m"\n',
)


@pytest.fixture
def providers() -> Iterator[Providers]:
    server = Providers().start()
    server.add_service("srv-v1api", "perm-tracker-api", instances=2)
    server.add_project("abcdefghij", "perm-tracker")
    try:
        yield server
    finally:
        server.stop()


def env_of(providers: Providers, **more: str) -> dict[str, str]:
    return {
        "RENDER_API": providers.url + "/render",
        "RENDER_API_KEY": providers.render_token,
        "SUPABASE_API": providers.url + "/supabase",
        "SUPABASE_ACCESS_TOKEN": providers.supabase_token,
        **more,
    }


def run(folder: Path, body: str, env: dict[str, str]) -> Harness:
    h = Harness(folder, body, header=HEADER + APIS, env=env).start()
    h.settle(60)
    return h


def test_the_decommission_calls_scale_render_to_zero_and_pause_supabase_and_wait_for_both(
    tmp_path: Path, providers: Providers
) -> None:
    h = run(tmp_path, SCALE + PAUSE, env_of(providers))
    try:
        assert h.engine.view().outcome == Outcome.DONE, [
            h.engine.step_runtime(s).reason for s in ("render-off", "supabase-off")
        ]
        assert providers.services["srv-v1api"]["serviceDetails"]["numInstances"] == 0
        assert providers.projects["abcdefghij"]["status"] == "INACTIVE"
        log = log_of(h, "supabase-off")
        # The host a step reached is shown; the token is not.
        assert f"POST {providers.url}/supabase/v1/projects/abcdefghij/pause -> 200" in log
        assert '$.status is "PAUSING"' in log and '$.status is "INACTIVE"' in log
        assert providers.supabase_token not in log and providers.render_token not in log_of(h, "render-off")
        assert providers.calls.count("POST /supabase/v1/projects/abcdefghij/pause") == 1
    finally:
        h.close()


def test_a_refused_token_fails_the_step_with_the_apis_answer(tmp_path: Path, providers: Providers) -> None:
    h = run(tmp_path, SCALE, env_of(providers, RENDER_API_KEY="rnd_wrong_token_987654"))
    try:
        reason = h.engine.step_runtime("render-off").reason
        called = f"POST {providers.url}/render/v1/services/srv-v1api/scale"
        assert reason == f'{called} answered 401, expected 202: {{"message":"unauthorized"}}'
        assert providers.services["srv-v1api"]["serviceDetails"]["numInstances"] == 2
    finally:
        h.close()


def test_a_retry_after_the_answer_waits_again_and_does_not_send_the_call_twice(
    tmp_path: Path, providers: Providers
) -> None:
    quick = PAUSE.replace('within = "10m"', 'within = "15s"')
    providers.projects["abcdefghij"]["_reads"] = -1000  # the pause takes longer than the step waits
    h = run(tmp_path, quick, env_of(providers))
    try:
        assert h.engine.step_runtime("supabase-off").reason.startswith("$.status of ")
        assert 'is still "PAUSING" after 15s, not "INACTIVE"' in h.engine.step_runtime("supabase-off").reason
        providers.projects["abcdefghij"]["_reads"] = 0
        h.engine.retry("supabase-off", h.engine.operator)
        h.wait_state("supabase-off", "succeeded", 30)
        assert providers.calls.count("POST /supabase/v1/projects/abcdefghij/pause") == 1
        assert "was answered before (200); not sent again" in log_of(h, "supabase-off")
    finally:
        h.close()


def test_numbers_in_the_answer_become_metrics(tmp_path: Path, providers: Providers) -> None:
    body = step(
        "instances",
        'connection = "render"\nmethod = "GET"\nurl = "/v1/services/srv-v1api"\n'
        'capture = { "v1.instances" = "$.serviceDetails.numInstances" }\n',
    )
    h = run(tmp_path, body, env_of(providers))
    try:
        assert h.engine.view().metrics["v1.instances"] == 2
        assert '"numInstances":2' in log_of(h, "instances")
    finally:
        h.close()
