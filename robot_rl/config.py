"""Session configuration: Hydra composes `launch/`, typed schemas validate the result."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hal.robots import ROBOTS, RobotKind
from robot_rl.core import ConfigError, RegistryError
from robot_rl.core.demo_side import DEMO_FRACTION_ADVICE

T = TypeVar("T")


@dataclass
class RunConfig:
    dir: str | None = None
    env_steps: int = 10000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3


@dataclass
class AdapterConfig:
    """A robot's observation as the learner takes it (robot_rl/runtime/adapter.py)."""

    rename: dict[str, str] = field(default_factory=dict)  # learner key: this robot's key
    drop: list[str] = field(default_factory=list)  # this robot's keys the learner does not take


@dataclass
class RobotConfig:
    """The keys every robot has; the rest of `robot:` belongs to its kind (`robot=<name>`), whose
    own schema (`hal.ROBOTS[name].settings`) checks them."""

    name: str = "sim"  # the kind in hal.ROBOTS; runs saved before the robot group had only sim
    id: str = "sim0"
    control_hz: float = 10.0
    translation_scale: float = 0.05  # metres per unit of a Δ end-effector action
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


@dataclass
class PlacementConfig:
    """Where a session's parts run; `hal.placement` checks it against the hardware first."""

    learner: str = "cpu"  # cpu | gpu | gpu:N, optionally @NODE or @GROUP (gpu:0@cloud)
    node_groups: dict[str, list[str]] = field(default_factory=dict)  # name -> host names


@dataclass
class SafetyConfig:
    workspace_low: list[float] = field(default_factory=lambda: [0.0, -0.45, 0.01])
    workspace_high: list[float] = field(default_factory=lambda: [0.55, 0.45, 0.5])
    max_delta: float = 1.0
    max_speed: float | None = None  # end-effector m/s (null: only the per-step limit)
    joint_low: list[float] | None = None  # joint position limits, where the robot reports joints
    joint_high: list[float] | None = None
    max_joint_velocity: float | None = None  # rad/s


@dataclass
class LearnerConfig:
    batch_size: int = 256
    warmup_steps: int = 500
    updates_per_step: float = 1  # updates per stored step: exact in sync, the least in async
    max_updates_per_step: float | None = None  # async: the most (None: never waits for data)
    threads: int = 1
    nice: int = 10  # how far the training thread yields the CPU (0-19; launch/config.yaml)


@dataclass
class RuntimeConfig:
    """How the session runs its parts (launch/config.yaml says what each value means)."""

    mode: str = "async"  # async | sync
    sync_every: int = 50
    max_lead: int = 100
    realtime: bool = False
    max_restarts: int = 3
    restart_window_s: float = 300.0
    heartbeat_timeout_s: float = 30.0


@dataclass
class ClusterConfig:
    address: str | None = None  # a Ray cluster's HOST:PORT; None: a private one on this machine


@dataclass
class GatewayConfig:
    """The session's gateway for edge robots (`robot-rl edge`, `robot-rl sim-server`)."""

    port: int | None = None  # null: no edge robots; 0: any free port
    host: str = "127.0.0.1"
    token_file: str | None = None  # the shared token; null: $ROBOT_RL_TOKEN
    edges_file: str | None = None  # per-edge keys (robot-rl token issue)
    certfile: str | None = None  # serve wss with this certificate ...
    keyfile: str | None = None  # ... and its private key
    serve_policy: bool = True  # answer the action requests of remote-policy edges
    bulk_port: int | None = 0  # weights to local-policy edges on a TCP side channel (0: any
    # free port); null: on the websocket only (a firewall that opens one port)
    weight_modes: list[str] = field(default_factory=lambda: ["full", "patch"])  # adaptive


@dataclass
class BufferConfig:
    """Replay: RAM cache size (null = a quarter of available memory), sampler, prior buffers."""

    cache_mb: int | None = None
    sampler: str = "uniform"
    sampler_params: dict[str, Any] = field(default_factory=dict)
    n_step: int = 1
    priors: list[str] = field(default_factory=list)  # read-only demo side (algo=rlpd)


@dataclass
class TaskConfig:
    name: str = "reach"
    reward: str = "dense"
    max_steps: int = 50
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeaturesConfig:
    """The frozen pretrained camera encoder (the CPU pixel path); off while `cameras` is empty."""

    cameras: list[str] = field(default_factory=list)
    weights: str | None = None  # saved encoder .npz; null: <run>/encoder.npz, pretrained if absent
    keep_images: bool = True  # store the raw frames beside their features (False saves memory)
    pretrain_steps: int = 2000  # behaviour-cloning steps on the run's demos
    channels: int = 32
    feature_dim: int = 64


@dataclass
class AlgoConfig:
    name: str = "sac"
    params: dict[str, Any] = field(default_factory=dict)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)


@dataclass
class RewardConfig:
    """Where each step's reward comes from: a name in policies.REWARDS and its arguments."""

    name: str = "task_rule"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeleopConfig:
    """A person's device (or a scripted stand-in): a name in hal.TELEOPS and its arguments."""

    name: str = "keyboard"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionConfig:
    """Everything a session needs; every field is type-checked when composed."""

    seed: int = 0
    run: RunConfig = field(default_factory=RunConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    robots: dict[str, dict[str, Any]] | None = None
    """The robots this session drives itself, by id, each overriding `robot`; null: one, `robot`;
    {}: none (only edge robots, through the gateway)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    teleop: TeleopConfig | None = None
    choices: dict[str, Any] = field(default_factory=dict)
    """The option of each config group it was composed from (task=, algo=, ...): a resumed run
    re-composes from them, so a group chosen anew behaves exactly as on a new run."""


def config_dir() -> Path:
    """The Hydra config tree: $ROBOT_RL_CONFIG_DIR, else `launch/` beside the package."""
    env = os.environ.get("ROBOT_RL_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "launch"
    if not (path / "config.yaml").exists():
        raise ConfigError(f"no config.yaml in {path}: set ROBOT_RL_CONFIG_DIR to the launch/ tree")
    return path


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = "; ".join(ln for ln in lines[:2] if not ln.startswith(("full_key:", "object_type=")))
    key = getattr(exc, "full_key", None)
    return f"{key}: {text}" if key and key not in text else (text or type(exc).__name__)


def typed_params(schema: type[T], params: Any, where: str) -> T:
    """Build the dataclass `schema` from a config section; unknown keys or bad types raise."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), params))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{where}.{_one_line(exc)}") from None


REMOVED_KEYS = {"buffer.prior_fraction": DEMO_FRACTION_ADVICE}
"""Keys that no longer exist -> what to use instead."""


def _drop_removed(cfg: DictConfig | dict[str, Any]) -> DictConfig | dict[str, Any]:
    """A removed key is a ConfigError naming its replacement; `buffer.prior_fraction: 0.5`, the
    old default that every earlier run's stored config holds, is dropped so those runs resume."""
    buffer = cfg.get("buffer") or {}
    if "prior_fraction" not in buffer:
        return cfg
    if buffer["prior_fraction"] != 0.5:
        raise ConfigError(f"buffer.prior_fraction was removed: {DEMO_FRACTION_ADVICE}")
    plain = OmegaConf.to_container(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    plain["buffer"] = {k: v for k, v in plain["buffer"].items() if k != "prior_fraction"}
    return plain


COMMON_ROBOT_KEYS = tuple(f.name for f in fields(RobotConfig))


def robot_settings(robot: DictConfig) -> tuple[type[RobotKind], Any]:
    """The kind `robot.name` names and its own keys of `robot` as its typed settings."""
    try:
        kind = ROBOTS.get(str(robot.get("name") or RobotConfig.name))
    except RegistryError as exc:
        raise ConfigError(f"robot.name: {exc}; pick one with robot=<name>") from None
    own = {k: v for k, v in robot.items() if k not in COMMON_ROBOT_KEYS}
    return kind, typed_params(kind.settings, own, "robot")


def validate(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """Merge onto the typed schema: unknown keys and wrong types raise ConfigError."""
    cfg = _drop_removed(cfg)
    schema = OmegaConf.structured(SessionConfig)
    OmegaConf.set_struct(schema.robot, False)  # a kind's own keys: checked by its schema below
    try:
        merged = OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid configuration: {_one_line(exc)}") from None
    robot_settings(merged.robot)
    if merged.task.reward not in ("dense", "sparse"):
        raise ConfigError(f"task.reward must be 'dense' or 'sparse', got {merged.task.reward!r}")
    for key in ("env_steps", "checkpoint_every"):
        if merged.run[key] <= 0:
            raise ConfigError(f"run.{key} must be positive, got {merged.run[key]}")
    _check_runtime(merged)
    return merged


RUNTIME_MODES = ("async", "sync")


def _check_runtime(cfg: DictConfig) -> None:
    """The session's shape: its mode, its knobs, and that it has a robot to learn from."""
    rt = cfg.runtime
    if rt.mode not in RUNTIME_MODES:
        raise ConfigError(f"runtime.mode must be one of {', '.join(RUNTIME_MODES)}, got "
                          f"{rt.mode!r}")
    if rt.sync_every <= 0 or rt.max_lead < 0:
        raise ConfigError("runtime.sync_every must be positive and runtime.max_lead >= 0")
    if rt.max_restarts < 1 or rt.restart_window_s <= 0 or rt.heartbeat_timeout_s <= 0:
        raise ConfigError("runtime.max_restarts must be >= 1, runtime.restart_window_s and "
                          "runtime.heartbeat_timeout_s positive")
    least, most = cfg.learner.updates_per_step, cfg.learner.max_updates_per_step
    if least <= 0:
        raise ConfigError(f"learner.updates_per_step must be positive, got {least}")
    if most is not None and most < least:
        raise ConfigError(f"learner.max_updates_per_step ({most}) is below "
                          f"learner.updates_per_step ({least}): raise it, or null for no cap")
    if not 0 <= cfg.learner.nice <= 19:
        raise ConfigError(f"learner.nice must be 0 (the robots' priority) to 19 (the lowest), "
                          f"got {cfg.learner.nice}")
    edges = cfg.gateway.port is not None
    if cfg.robots is not None and not cfg.robots and not edges:
        raise ConfigError("robots={} leaves this session no robot: list robots, or set "
                          "gateway.port=N for edge robots to connect")
    if rt.mode == "sync" and edges:
        raise ConfigError("runtime.mode=sync runs its robots in lockstep with the learner and "
                          "cannot pause edge robots: use runtime.mode=async with gateway.port")


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's composition of `launch/config.yaml` with `overrides`, choices recorded (not yet
    validated)."""
    # `teleop=null` (no device) is Hydra's `~teleop`: drop the group from the defaults list
    overrides = [f"~{g}" if g is not None and c in ("null", "none") else o
                 for o, (g, c) in zip(overrides, map(_group_pair, overrides), strict=True)]
    for group, option in filter(None, map(group_override, overrides)):
        if group == "robot":
            _store_robot_kind(option)
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    choices = {g: c for g, c in cfg.hydra.runtime.choices.items() if not g.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.choices = choices
    return cfg


def _store_robot_kind(name: str) -> None:
    """A robot kind registered by another package has no YAML here: its config is the common
    keys and its schema's defaults, offered to Hydra as the option `robot=<name>`."""
    if (config_dir() / "robot" / f"{name}.yaml").exists() or name not in ROBOTS:
        return
    kind = ROBOTS.get(name)
    node = {**asdict(RobotConfig(name=name, id=f"{name}0")), **asdict(kind.settings())}
    ConfigStore.instance().store(group="robot", name=name, node=node)


def config_keys(cfg: DictConfig | dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf key of a config as a dotted path (`algo.params.lr`, `run.dir`, ...)."""
    keys = []
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        keys += config_keys(value, f"{path}.") if isinstance(value, (dict, DictConfig)) else [path]
    return keys


def _unknown_key(key: str, overrides: list[str]) -> ConfigError:
    """The error for an override of a key no config has, naming the closest existing keys."""
    groups = [o for o in overrides if "." not in o.split("=", 1)[0] and "=" in o]
    try:
        known = config_keys(_compose(groups))
    except (HydraException, OmegaConfBaseException):
        known = config_keys(OmegaConf.structured(SessionConfig))
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else \
        "; `robot-rl config show` lists every key"
    return ConfigError(f"bad override: unknown key '{key}'{hint}")


def compose_session(overrides: list[str]) -> DictConfig:
    """Compose `launch/config.yaml` with command-line overrides into a validated config."""
    try:
        cfg = _compose(overrides)
    except MissingConfigException as exc:
        group = (exc.missing_cfg_file or "").split("/")[0]
        choices = ", ".join(exc.options or [])
        raise ConfigError(f"bad override: {exc.missing_cfg_file} does not exist; "
                          f"choose {group}= one of: {choices}") from None
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        unknown = re.search(r"Could not override '([^']+)'", str(exc))
        if unknown and unknown.group(1) in REMOVED_KEYS:
            raise ConfigError(f"{unknown.group(1)} was removed: "
                              f"{REMOVED_KEYS[unknown.group(1)]}") from None
        if unknown:
            raise _unknown_key(unknown.group(1), overrides) from None
        raise ConfigError(f"bad override: {_one_line(exc)}") from None
    return validate(cfg)


def group_override(item: str) -> tuple[str, str] | None:
    """(group, option) when `item` chooses a config group (`teleop=scripted`), else None."""
    key, sep, value = item.partition("=")
    key = key.lstrip("+~")
    return (key, value) if sep and "." not in key and key in GROUPS else None


def _group_pair(item: str) -> tuple[str | None, str | None]:
    return group_override(item) or (None, None)


GROUPS = ("robot", "task", "algo", "reward", "teleop")  # the config groups of launch/

LEGACY_CHOICES = {"robot": "sim"}
"""The option of a group that runs saved before the group existed were composed with."""


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files in its folder of the config tree (and, for
    `robot`, every kind registered in hal.ROBOTS)."""
    options = {p.stem for p in (config_dir() / group).glob("*.yaml")}
    return sorted(options | set(ROBOTS.names()) if group == "robot" else options)


FIXED_ON_RESUME = ("task", "algo")  # the buffer's layout and the checkpoint depend on these


def resume_config(stored: DictConfig, overrides: list[str], where: str) -> DictConfig:
    """A stored run's config with new overrides, composed exactly as a new run would be.

    Group options come from the stored `choices` unless an override picks one anew; then that
    group is composed afresh (with any of its overrides). Every other value stays as stored,
    except the keys the overrides name. task= and algo= cannot change (`where` names the run).
    """
    # runs saved before `choices` existed: each group's option was its name
    stored_choices = {g: stored[g].get("name", LEGACY_CHOICES.get(g))
                      if stored.get(g) is not None else None for g in GROUPS}
    stored_choices.update(stored.get("choices") or {})
    picked = dict(filter(None, map(group_override, overrides)))
    for group in FIXED_ON_RESUME:
        if group in picked and picked[group] != stored_choices.get(group):
            raise ConfigError(f"{where} was run with {group}={stored_choices.get(group)}; it "
                              f"cannot resume as {group}={picked[group]} (its buffer and "
                              "checkpoints belong to the first). Use a new run.dir")
    choices = {g: "null" if c is None else c for g, c in {**stored_choices, **picked}.items()}
    values = [o for o in overrides if group_override(o) is None]
    fresh = compose_session([f"{g}={c}" for g, c in choices.items()] + values)
    merged = OmegaConf.create(OmegaConf.to_container(stored, resolve=True))
    for group in picked:
        merged[group] = fresh[group]
    for item in values:
        key = item.split("=", 1)[0].lstrip("+~")
        OmegaConf.update(merged, key, OmegaConf.select(fresh, key), force_add=True)
    merged.choices = fresh.choices
    return validate(merged)
