"""The factories of a session: the one place that turns config into concrete classes.

Everything else in the runtime sees the interfaces (`hal.Robot`, `hal.SafeRobot`, `Teleop`,
`Reward`, `ReplayBuffer`); only these functions name the classes behind them. The learning and
storage stacks (torch, zarr, Hydra's typed params) load inside the factories that need them, so
a process that builds only a robot and its reward (an edge with a remote policy) never loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hal import TELEOPS, Robot, SafeRobot, SafetyLimits, Teleop
from hal.hardware_file import load_hardware
from hal.inventory import Inventory, take_inventory
from hal.leases import LeaseStore
from hal.placement import Assignment, Placement, PlacementSpec, plan_placement
from hal.robots import RobotKind, RobotSetup
from hal.units import Node
from policies.rewards import REWARDS, Reward
from robot_rl.core import ArraySpec, ConfigError, DictSpec, HardwareError, RegistryError
from robot_rl.core.demo_side import DEMO_FRACTION_ADVICE
from robot_rl.runtime.adapter import ObservationAdapter
from sim import TASKS, Task

if TYPE_CHECKING:
    from buffer import DemoMix, ReplayBuffer, Sampler
    from robot_rl.runtime.run_dir import RunDir


def default_run_dir(cfg: DictConfig) -> Path:
    """runs/<task>-<algo>-<timestamp>: where a run without `run.dir` lives."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.task.name}-{cfg.algo.name}-{stamp}"


def build_scene(cfg: DictConfig, kind: type[RobotKind]) -> Task | None:
    """The sim task a simulating robot builds its scene for; None for a robot of hardware, whose
    task is a name and a reward source (a sim task's scene and rule cannot describe it)."""
    task_name = str(cfg.task.name)
    if not kind.simulated:
        if task_name in TASKS:
            raise ConfigError(
                f"task={task_name} is a sim task (its scene, resets and reward rule exist only in "
                f"MuJoCo) and robot={cfg.robot.name} drives hardware: name your own task "
                f"(task.name=wipe_table reward=human_label) or use a sim robot (robot=sim)")
        return None
    try:
        task_cls = TASKS.get(task_name)
    except RegistryError as exc:
        raise ConfigError(f"robot={cfg.robot.name} simulates its task's scene: {exc}") from None
    params = OmegaConf.to_container(cfg.task.params, resolve=True)
    try:
        return task_cls(max_steps=cfg.task.max_steps, **params)
    except TypeError as exc:
        raise ConfigError(f"task.params for {task_name!r}: {exc}") from None


def robot_setup(cfg: DictConfig, scene: Task | None = None) -> RobotSetup:
    """The common keys of `robot:` (and the scene, where one is built)."""
    robot = cfg.robot
    return RobotSetup(str(robot.id), float(robot.control_hz), float(robot.translation_scale),
                      int(cfg.seed), scene)


def build_robot(cfg: DictConfig) -> tuple[Robot, SafeRobot]:
    """The configured robot (`robot=<kind>`), and the same robot behind the safety layer (the one
    to drive)."""
    from robot_rl.config import robot_settings

    kind, settings = robot_settings(cfg.robot)
    setup = robot_setup(cfg, build_scene(cfg, kind))
    try:
        robot = kind.build(settings, setup)
    except (RegistryError, HardwareError) as exc:
        raise ConfigError(f"robot: {exc}") from None
    limits = SafetyLimits(
        workspace_low=tuple(cfg.safety.workspace_low),
        workspace_high=tuple(cfg.safety.workspace_high),
        max_delta=cfg.safety.max_delta,
        translation_scale=setup.translation_scale,
        max_speed=cfg.safety.max_speed, control_hz=setup.control_hz,
        joint_low=None if cfg.safety.joint_low is None else tuple(cfg.safety.joint_low),
        joint_high=None if cfg.safety.joint_high is None else tuple(cfg.safety.joint_high),
        max_joint_velocity=cfg.safety.max_joint_velocity,
    )
    return robot, SafeRobot(robot, limits)


def local_inventory(hardware: Sequence[Path] = (), types: Sequence[str] | None = None
                    ) -> Inventory:
    """This node's inventory: every unit its checkers find (those of `types` only, where given),
    and those its hardware files declare (`hardware`, else every `launch/hardware/*.yaml`)."""
    from hal.checker import CHECKERS
    from robot_rl.config import config_dir

    files = list(hardware) or sorted((config_dir() / "hardware").glob("*.yaml"))
    checkers = None if types is None else [CHECKERS.get(t)() for t in types]
    return take_inventory(Node.local(load_hardware(files)), checkers)


def session_inventory(cfg: DictConfig) -> Inventory:
    """This node's units of the kinds a session asks for: its robots' and accelerators."""
    from robot_rl.config import robot_settings

    kind, _ = robot_settings(cfg.robot)
    return local_inventory(types=sorted({kind.unit_type, "accelerator"}))


def placement_spec(cfg: DictConfig) -> PlacementSpec:
    """What the session asks of the hardware: the unit each of its robots runs on (what its kind
    makes of its settings: `sim:<arm>` for a sim arm, the declared unit of a real one) and the
    learner's place (`placement.learner`)."""
    from robot_rl.config import robot_settings

    robots = []
    for robot_cfg in session_robots(cfg).values():
        kind, settings = robot_settings(robot_cfg.robot)
        robots.append(kind.unit(settings, robot_setup(robot_cfg)))
    kind, _ = robot_settings(cfg.robot)
    p = cfg.placement
    return PlacementSpec(tuple(robots), kind.unit_type, str(p.learner),
                         {str(g): tuple(map(str, nodes)) for g, nodes in p.node_groups.items()})


def plan_session(cfg: DictConfig, inventories: Sequence[Inventory],
                 leases: LeaseStore | None = None) -> Placement:
    """The session's placement checked against the inventories of its nodes (and, given a lease
    store, against other sessions' leases), before anything starts; PlacementError if not."""
    return plan_placement(placement_spec(cfg), inventories, leases)


def placed_robot_config(robot_cfg: DictConfig, robot: Assignment) -> DictConfig:
    """A robot's config (one of `session_robots`) as it builds on the unit it was placed on:
    its kind's settings for that unit (a sim unit's arm model, ...)."""
    from robot_rl.config import robot_settings, validate

    kind, settings = robot_settings(robot_cfg.robot)
    placed = OmegaConf.create(OmegaConf.to_container(robot_cfg, resolve=True))
    placed.robot.update(asdict(kind.for_unit(settings, robot.unit)))
    return validate(placed)


def session_robots(cfg: DictConfig) -> dict[str, DictConfig]:
    """The robots this session drives itself, by id: each a copy of `cfg` whose `robot` is
    overridden by its entry of `robots` (null: the one `robot`); robots after the first get their
    own seed, so their scenes and exploration differ."""
    from robot_rl.config import robot_settings

    if cfg.robots is None:
        return {str(cfg.robot.id): cfg}
    robots = {}
    for index, (robot_id, entry) in enumerate(cfg.robots.items()):
        one = cfg.copy()
        try:
            one.robot = OmegaConf.merge(cfg.robot, entry or {}, {"id": str(robot_id)})
            robot_settings(one.robot)
        except (OmegaConfBaseException, ConfigError) as exc:
            why = exc.msg if isinstance(exc, OmegaConfBaseException) else str(exc)
            raise ConfigError(f"robots.{robot_id}: {why.splitlines()[0]}; its keys are those "
                              f"of `robot` ({', '.join(cfg.robot)})") from None
        one.seed = int(cfg.seed) + 1000 * index
        robots[str(robot_id)] = one
    return robots


def demo_side_path(cfg: DictConfig, run: RunDir) -> Path:
    """The run's own demo side: its demos, with frozen camera features where configured."""
    return run.feature_demos if cfg.algo.features.cameras else run.demos


def build_adapter(cfg: DictConfig, spec: DictSpec) -> ObservationAdapter:
    """The robot's `robot.adapter` for observations of `spec` (features already added)."""
    a = cfg.robot.adapter
    return ObservationAdapter(str(cfg.robot.id), spec, dict(a.rename), list(a.drop))


def feature_spec(cfg: DictConfig, raw_spec: DictSpec) -> DictSpec:
    """A robot's observation with frozen camera features added where configured."""
    if not cfg.algo.features.cameras:
        return raw_spec
    from robot_rl.runtime.frozen_features import FeatureObserver

    return FeatureObserver(cfg.algo.features, raw_spec).spec


def observed_spec(cfg: DictConfig, raw_spec: DictSpec) -> DictSpec:
    """What the learner sees of a robot whose observation is `raw_spec`: frozen camera features
    where configured, then the robot's adapter."""
    return build_adapter(cfg, feature_spec(cfg, raw_spec)).spec


def session_specs(cfg: DictConfig) -> tuple[DictSpec, ArraySpec]:
    """The learner's observation and action specs: those of the session's first robot (or of
    `robot`), as the learner sees them; no robot needs to be connected for this."""
    first = next(iter(session_robots(cfg).values()), cfg)
    robot, _ = build_robot(first)
    return observed_spec(first, robot.observation_spec), robot.action_spec


def build_algorithm(cfg: DictConfig, obs_spec: DictSpec, action_spec: ArraySpec) -> Any:
    """The algorithm `algo.name` with `algo.params`, for these observations and actions."""
    from policies import ALGORITHMS
    from robot_rl.config import typed_params

    try:
        algo_cls = ALGORITHMS.get(cfg.algo.name)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    params = typed_params(algo_cls.config_class, cfg.algo.params, "algo.params")
    params.hidden = tuple(params.hidden)
    return algo_cls(obs_spec, action_spec, params, seed=cfg.seed)


def build_reward(cfg: DictConfig, obs_spec: DictSpec) -> Reward:
    """The reward source `reward.name` with `reward.params`, checked against the observations."""
    try:
        reward_cls = REWARDS.get(cfg.reward.name)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    try:
        params = OmegaConf.to_container(cfg.reward.params, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"reward={cfg.reward.name} needs {exc.full_key}: set it on the command "
                          f"line, e.g. {exc.full_key}=...") from None
    try:
        reward = reward_cls(**params)
    except TypeError as exc:
        raise ConfigError(f"reward.params for {cfg.reward.name!r}: {exc}") from None
    reward.check(obs_spec)
    return reward


def require_labels_source(cfg: DictConfig, reward: Reward, teleop: Teleop | None) -> None:
    """A reward scored by a person's labels needs a teleop device to read them from."""
    if reward.needs_labels and teleop is None:
        raise ConfigError(f"reward={cfg.reward.name} scores episodes by a person's labels and "
                          "this session has no teleop to read them from: add teleop=keyboard "
                          "(y = success, n = failure)")


def build_teleop(cfg: DictConfig, robot: Robot) -> Teleop | None:
    """The teleop device `teleop=<name>` with `teleop.params` for `robot` (the unwrapped one,
    which a scripted stand-in may plan from), or None where none is set."""
    if cfg.get("teleop") is None:
        return None
    try:
        device = TELEOPS.get(cfg.teleop.name)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return device.for_robot(robot, cfg.seed, **OmegaConf.to_container(cfg.teleop.params))
    except TypeError as exc:
        raise ConfigError(f"teleop.params for {cfg.teleop.name!r}: {exc}") from None


def build_buffer(
    cfg: DictConfig, path: Path, obs_spec: DictSpec, action_spec: ArraySpec, gamma: float,
    *, readonly: bool = False, obs_keys: list[str] | None = None,
) -> ReplayBuffer:
    """The run's own buffer, with the configured cache and sampler; n-step returns use the
    learner's discount `gamma`. `readonly`: a learner's view that follows the session's writer,
    holding only `obs_keys` (the fields its policy reads) if given."""
    from buffer import CacheConfig, ReplayBuffer

    b = cfg.buffer
    cache = CacheConfig(max_bytes=None if b.cache_mb is None else int(b.cache_mb) << 20)
    return ReplayBuffer(path, obs_spec, action_spec, sampler=build_sampler(cfg),
                        cache=cache, task=cfg.task.name, n_step=b.n_step, gamma=gamma,
                        readonly=readonly, obs_keys=obs_keys)


def build_sampler(cfg: DictConfig) -> Sampler:
    """The sampler `buffer.sampler` with `buffer.sampler_params`."""
    from buffer import SAMPLERS

    b = cfg.buffer
    if b.sampler == "mixed" or "prior_fraction" in b.sampler_params:
        raise ConfigError(f"buffer.sampler=mixed and its prior_fraction were removed: "
                          f"{DEMO_FRACTION_ADVICE}")
    try:
        return SAMPLERS.get(b.sampler)(**OmegaConf.to_container(b.sampler_params))
    except (RegistryError, TypeError) as exc:
        raise ConfigError(f"buffer.sampler {b.sampler!r}: {exc}") from None


def demo_fraction(algorithm: Any) -> float:
    """The algorithm's share of demo-side rows per batch: algo.params.demo_fraction (0 without)."""
    return float(getattr(algorithm.config, "demo_fraction", 0.0))


def check_replay(cfg: DictConfig, fraction: float) -> None:
    """Refuse, before anything opens a buffer, what `build_replay` would refuse: a bad sampler,
    prior buffers without a demo side to go to, prior buffers that are not there."""
    build_sampler(cfg)
    if fraction == 0.0 and cfg.buffer.priors:
        raise ConfigError(f"buffer.priors are the demo side of algo=rlpd, and "
                          f"{DEMO_FRACTION_ADVICE}")
    for prior in cfg.buffer.priors:
        if not (Path(prior) / "zarr.json").exists():
            raise ConfigError(f"buffer.priors: {prior} is not a robot_rl buffer (no zarr.json); "
                              "name a run's buffer/ or demos/ folder")


def build_replay(cfg: DictConfig, buffer: ReplayBuffer, demos: ReplayBuffer | None,
                 gamma: float, fraction: float) -> ReplayBuffer | DemoMix:
    """What the learner samples from: the run's buffer, with `fraction` of each batch from the
    demo side (the run's `demos` and the read-only `buffer.priors`) where the fraction is set."""
    from buffer import DemoMix, ReplayBuffer

    check_replay(cfg, fraction)
    if fraction == 0.0:
        return buffer
    priors = [ReplayBuffer.open_prior(Path(p), n_step=cfg.buffer.n_step, gamma=gamma,
                                      obs_keys=buffer.obs_keys) for p in cfg.buffer.priors]
    return DemoMix(buffer, [*([demos] if demos is not None else []), *priors], fraction)
