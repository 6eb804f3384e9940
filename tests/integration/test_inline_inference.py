"""Where the gateway runs a served policy: inline on its loop only while it is CPU-light."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from comms.edge_link import EdgeLink
from comms.gateway import GatewayThread
from tests.integration.comms_helpers import FAST, OBS_SPEC


class ThreadRecordingPolicy:
    """Answers after `delay` seconds and records the thread each call ran on."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.threads = delay, []

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return np.zeros(2, np.float32), 3


class LightPolicy(ThreadRecordingPolicy):
    cpu_light = True


def connected_link(gw: GatewayThread, make_link: Callable[..., EdgeLink]) -> EdgeLink:
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    deadline = time.monotonic() + 5
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert link.connected
    return link


def test_a_cpu_light_policy_is_served_on_the_gateway_loop(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    policy = LightPolicy()
    gw = start_gateway(inference=policy)
    link = connected_link(gw, make_link)
    for _ in range(5):
        assert link.request_action("r1", OBS_SPEC.zeros(), 1.0) is not None
    assert policy.threads == ["gateway"] * 5
    assert gw.gateway.inline_inference and gw.gateway.stats["inline_demoted"] == 0


def test_other_policies_run_on_the_policy_thread(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    policy = ThreadRecordingPolicy()
    gw = start_gateway(inference=policy)
    link = connected_link(gw, make_link)
    for _ in range(3):
        assert link.request_action("r1", OBS_SPEC.zeros(), 1.0) is not None
    assert all(name.startswith("gateway-policy") for name in policy.threads), policy.threads
    assert not gw.gateway.inline_inference


def test_a_slow_cpu_light_policy_leaves_the_loop_after_one_call_and_heartbeats_flow(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    policy = LightPolicy(delay=5 * FAST.inline_act)
    gw = start_gateway(inference=policy)
    link = connected_link(gw, make_link)
    assert link.request_action("r1", OBS_SPEC.zeros(), 1.0) is not None
    assert gw.gateway.stats["inline_demoted"] == 1 and not gw.gateway.inline_inference
    policy.delay = 4 * FAST.heartbeat  # long enough for several heartbeats while it thinks
    beats = link.stats["heartbeats"]
    assert link.request_action("r1", OBS_SPEC.zeros(), 2.0) is not None
    assert policy.threads[0] == "gateway" and policy.threads[1].startswith("gateway-policy")
    assert link.stats["heartbeats"] - beats >= 2  # the gateway loop kept beating meanwhile
    assert link.connected and gw.gateway.stats["inline_demoted"] == 1


def test_an_inline_answer_after_the_deadline_is_dropped_and_counted(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    policy = LightPolicy(delay=0.3)
    gw = start_gateway(inference=policy)
    link = connected_link(gw, make_link)
    assert link.request_action("r1", OBS_SPEC.zeros(), 0.1) is None
    assert link.stats["deadline_missed"] == 1
    time.sleep(0.4)
    assert gw.gateway.stats["requests_expired"] == 1 and gw.gateway.stats["actions_served"] == 0
    assert link.stats["late_responses"] == 0  # expired work is not answered at all


class PickyPolicy:
    """Refuses observations whose state starts with a negative number."""

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        if obs["state"][0] < 0:
            raise ValueError("state[0] must not be negative")
        return np.zeros(2, np.float32), 1


class LightPickyPolicy(PickyPolicy):
    cpu_light = True


@pytest.mark.parametrize("policy", [PickyPolicy(), LightPickyPolicy()],
                         ids=["policy thread", "inline"])
def test_a_policy_that_fails_on_one_observation_answers_the_next(
        policy: PickyPolicy, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink], caplog: pytest.LogCaptureFixture) -> None:
    gw = start_gateway(inference=policy)
    link = connected_link(gw, make_link)
    bad = OBS_SPEC.zeros()
    bad["state"][0] = -1.0
    assert link.request_action("r1", bad, 0.3) is None  # the edge holds; the link stays up
    assert gw.gateway.stats["inference_errors"] == 1
    assert any("state[0] must not be negative" in r.getMessage() for r in caplog.records)
    assert link.request_action("r1", OBS_SPEC.zeros(), 2.0) is not None
    assert link.stats["disconnects"] == 0


def test_a_gateway_without_a_policy_says_so_and_keeps_the_link(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink],
        caplog: pytest.LogCaptureFixture) -> None:
    gw = start_gateway()
    link = connected_link(gw, make_link)
    assert link.request_action("r1", OBS_SPEC.zeros(), 0.3) is None
    assert any("this gateway serves no policy" in r.getMessage() for r in caplog.records)
    assert link.connected and link.stats["disconnects"] == 0
