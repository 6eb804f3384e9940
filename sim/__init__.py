"""MuJoCo arms that are hal robots, the tasks they do, and scripted experts for them."""

from sim.arm import CAMERAS, MujocoArm
from sim.arm_models import ARMS, ArmModel
from sim.gym_env import ENV_IDS, SimArmEnv
from sim.interveners import ScriptedIntervener
from sim.randomization import DomainRandomizer, RandomizationConfig
from sim.tasks import TASKS, Task, TaskOutcome

__all__ = [
    "ARMS", "CAMERAS", "ENV_IDS", "TASKS", "ArmModel", "DomainRandomizer", "MujocoArm",
    "RandomizationConfig", "ScriptedIntervener", "SimArmEnv", "Task", "TaskOutcome",
]
