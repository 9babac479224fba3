"""Errors meant for the user: `run.py` prints their message (no traceback) and exits non-zero."""


class UserError(Exception):
    """Bad input or configuration that the user can fix."""


class DataError(UserError, ValueError):
    """Input data is missing, empty, unreadable or malformed."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid or missing."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN or infinite."""


class TrainingUnhealthy(UserError):
    """train.health=stop: the run collapsed, its miner went dead or its loss is pinned at the margin."""


class TrackingError(UserError):
    """The experiment tracking backend cannot be used (e.g. the MLflow server does not answer)."""


class TrainingInterrupted(UserError):
    """Training stopped on SIGTERM/SIGINT after writing a checkpoint to resume from."""


class RunInterrupted(UserError):
    """A run stopped by SIGINT / SIGTERM outside the training loop (data indexing, generation, evaluation, export):
    its MLflow run is marked KILLED and nothing half-written is left."""


def first_line(err: BaseException | str, limit: int | None = None) -> str:
    """The first line of an error's message, for a one-line report: the exception's type name when the message is
    empty (`str(KeyboardInterrupt())` is ""), cut to `limit` characters when given."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__ if isinstance(err, BaseException) else ""
    return line if limit is None else line[:limit]
