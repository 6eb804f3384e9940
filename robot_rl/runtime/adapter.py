"""A robot's observations mapped onto the learner's: one learner, robots of different makes.

Each robot's `robot.adapter` renames the keys of its observations that the learner knows by other
names and drops those the learner does not take; what is left must be exactly the learner's
observation (the first robot's, after its own adapter), key for key, shape for shape. A robot
that does not fit is refused before the session starts, naming the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from robot_rl.core import ArraySpec, ConfigError, DictSpec, Observation


class ObservationAdapter:
    """`rename` {learner key: robot key}, `drop` [robot keys]; call it on an observation."""

    def __init__(self, robot_id: str, spec: DictSpec, rename: Mapping[str, str],
                 drop: Sequence[str]) -> None:
        self.robot_id, self.rename, self.drop = robot_id, dict(rename), set(drop)
        unknown = sorted((set(self.rename.values()) | self.drop) - set(spec))
        if unknown:
            raise ConfigError(f"robot {robot_id}: its adapter names {unknown}, which its "
                              f"observation does not have (it has {sorted(spec)})")
        taken = {robot: learner for learner, robot in self.rename.items()}
        self.keys = {taken.get(k, k): k for k in spec if k not in self.drop}  # learner <- robot
        self.spec = DictSpec({learner: spec[robot] for learner, robot in self.keys.items()})

    def __call__(self, obs: Observation) -> Observation:
        return {learner: obs[robot] for learner, robot in self.keys.items()}

    def check(self, learner: DictSpec, action: ArraySpec, learner_action: ArraySpec) -> None:
        """ConfigError unless this robot, adapted, speaks exactly what the learner learns from."""
        missing = sorted(set(learner) - set(self.spec))
        extra = sorted(set(self.spec) - set(learner))
        differ = sorted(k for k in set(learner) & set(self.spec) if learner[k] != self.spec[k])
        if missing or extra or differ:
            raise ConfigError(
                f"robot {self.robot_id} does not fit the learner's observation: it lacks "
                f"{missing}, has {extra} the learner does not take, and gives {differ} in other "
                f"shapes; map them with robots.{self.robot_id}.adapter.rename "
                "({learner_key: robot_key}) and .drop ([robot_key, ...])")
        if action != learner_action:
            raise ConfigError(f"robot {self.robot_id} takes actions {action}, the learner gives "
                              f"{learner_action}: it cannot join this session")


def adapted(observe: Callable[[Observation], Observation] | None,
            adapter: ObservationAdapter) -> Callable[[Observation], Observation]:
    """The robot's observation as the learner takes it: frozen features first, then the adapter."""
    if observe is None:
        return adapter
    return lambda obs: adapter(observe(obs))
