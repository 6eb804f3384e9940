"""ServedPolicy: a received observation reaches the policy checked and writable (torch-safe)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from comms.messages import ActionRequest, decode_message
from robot_rl.runtime.gateway import ServedPolicy
from tests.integration.comms_helpers import ACTION_SPEC, OBS_SPEC


class TorchPolicy:
    """Feeds the observation to torch as a real encoder does, and scales it in place."""

    version = 3

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = torch.as_tensor(obs["state"])
        state.mul_(2.0)  # a policy may normalise its input in place
        return np.clip(state[:2].numpy(), -1.0, 1.0)


def test_a_received_observation_reaches_torch_writable_without_a_warning() -> None:
    obs = {"state": np.array([0.25, -0.25, 9.0], np.float32),
           "image": np.zeros((16, 16, 3), np.uint8)}
    received = decode_message(ActionRequest(1, "r1", obs, 0.1).encode())
    assert isinstance(received, ActionRequest)
    assert not received.obs["image"].flags.writeable  # zero-copy views of the frame
    served = ServedPolicy(TorchPolicy(), OBS_SPEC, ACTION_SPEC)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        action, version = served.act("r1", received.obs)
    np.testing.assert_array_equal(action, [0.5, -0.5])
    assert version == 3
    np.testing.assert_array_equal(received.obs["state"], obs["state"])  # the frame is untouched
