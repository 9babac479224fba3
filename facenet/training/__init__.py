"""Training: `setup.build_training` builds a run's parts from config, `trainer.train` / `trainer.fit` run it, with
its position in `state.TrainState`, its checkpoints (`checkpoints`, `resume`) and its stop conditions
(`stopping`); `step`, `optim` and `schedules` make the compiled step, the optimiser and the learning rates."""
