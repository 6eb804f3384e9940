"""Session orchestration: the actor and learner loops, checkpoints and the run directory."""
