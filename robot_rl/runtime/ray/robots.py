"""The session's robots as this process sees them: an env worker in a Ray actor, or one in this
process (a robot a person drives from this terminal), behind the same few calls."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import Any

import ray
from omegaconf import DictConfig

from hal import Teleop
from hal.session_leases import LeaseView
from robot_rl.core import SessionError
from robot_rl.runtime.env_worker import SessionStart, WeightUpdate
from robot_rl.runtime.ray.actors import WorkerHost

ANSWER_S = 10.0  # how long a question to a robot's process may take before it counts as failed
START_S = 600.0  # how long a robot's worker may take to start (imports, a robot's connect)


class Pending:
    """A call in flight, on a Ray actor (an object ref) or on a thread of this process."""

    def __init__(self, call: ray.ObjectRef | Future[Any]) -> None:
        self.call = call

    def done(self) -> bool:
        if isinstance(self.call, Future):
            return self.call.done()
        ready, _ = ray.wait([self.call], timeout=0)
        return bool(ready)

    def result(self) -> Any:
        """The call's value, waiting for it; raises what the call raised."""
        return self.call.result() if isinstance(self.call, Future) else ray.get(self.call)


class RobotHandle(ABC):
    """One robot of the session: `run` acts until the budget, `stop`, or the e-stop."""

    @abstractmethod
    def run(self, budget: int) -> Pending: ...

    @abstractmethod
    def run_episode(self) -> Pending:
        """One episode (the sync mode); its value is (length, seconds)."""

    @abstractmethod
    def take_weights(self, update: WeightUpdate | None) -> int: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def status(self) -> dict[str, Any]: ...

    def ready(self) -> None:
        """Wait until the robot's worker is up (its robot connected, its policy built)."""
        self.status()

    @abstractmethod
    def close(self) -> None: ...


class RemoteRobot(RobotHandle):
    """An env worker in its own process (`EnvWorkerActor`)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def run(self, budget: int) -> Pending:
        return Pending(self.actor.run.remote(budget))

    def run_episode(self) -> Pending:
        return Pending(self.actor.run_episode.remote())

    def take_weights(self, update: WeightUpdate | None) -> int:
        return int(ray.get(self.actor.take_weights.remote(update)))

    def stop(self) -> None:
        self.actor.stop.remote()

    def status(self) -> dict[str, Any]:
        return dict(ray.get(self.actor.status.remote(), timeout=ANSWER_S))

    def ready(self) -> None:
        try:
            ray.get(self.actor.ping.remote(), timeout=START_S)
        except ray.exceptions.GetTimeoutError:
            raise SessionError(f"a robot's worker did not start within {START_S:.0f} s; see "
                               "its log in <run>/logs") from None

    def close(self) -> None:
        try:
            ray.get(self.actor.close.remote())
        finally:
            ray.kill(self.actor)  # its process goes now, not when the last handle is collected


class LocalRobot(RobotHandle):
    """An env worker in this process: its teleop device is one a person drives from here."""

    def __init__(self, cfg: DictConfig, writer: Any, learner: Any, start: SessionStart,
                 gated: bool, first_robot: str, teleop: Teleop,
                 lease: LeaseView | None = None) -> None:
        self.host = WorkerHost(cfg, writer, learner, start, gated, first_robot, teleop, lease)

    def run(self, budget: int) -> Pending:
        return Pending(self.host.submit_run(budget))

    def run_episode(self) -> Pending:
        return Pending(self.host.submit_episode())

    def take_weights(self, update: WeightUpdate | None) -> int:
        return self.host.take_weights(update)

    def stop(self) -> None:
        self.host.stop()

    def status(self) -> dict[str, Any]:
        return self.host.status()

    def close(self) -> None:
        self.host.close()
