"""robot_rl: online policy learning on real robot arms (kernel and composition root)."""

__version__ = "0.1.0"
