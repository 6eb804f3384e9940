import numpy as np
import pytest

from robot_rl.core import Episode, Registry, RegistryError, Source, Transition


def test_registry_registers_and_names_known_entries_on_a_miss():
    reg: Registry[type] = Registry("widget")

    @reg.register("gear")
    class Gear:
        pass

    assert reg.get("gear") is Gear
    assert "gear" in reg
    with pytest.raises(RegistryError, match="unknown widget 'cog'; known: gear"):
        reg.get("cog")


def test_registry_refuses_a_second_object_under_one_name():
    reg: Registry[object] = Registry("widget")
    reg.register("a")(1)
    reg.register("a")(1)  # the same object again is harmless
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("a")(2)


def test_registry_discovers_entry_points():
    reg: Registry[type] = Registry("task", entry_point_group="robot_rl.tasks")
    assert "reach" in reg.names()
    from sim.tasks.reach import ReachTask

    assert reg.get("reach") is ReachTask


def _step(i: int, reward: float, intervened: bool = False) -> Transition:
    obs = {"x": np.full(2, i, np.float32)}
    return Transition(obs, np.zeros(5, np.float32), reward, obs, False, False, intervened,
                      Source.HUMAN if intervened else Source.POLICY, step=i)


def test_episode_sums_rewards_and_counts_interventions():
    ep = Episode(3, "arm", "reach", [_step(0, 1.0), _step(1, -0.5, True), _step(2, 2.0, True)])
    assert ep.length == 3
    assert ep.total_reward == pytest.approx(2.5)
    assert ep.interventions == 2
    assert not ep.transitions[0].done
    assert int(Source.DEMO) == 2
