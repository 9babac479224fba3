"""Optimisation: learning-rate schedules, optimizers, the compiled training step and the training loop."""
