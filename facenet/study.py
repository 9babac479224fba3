"""Optuna studies shared through a database (`hydra/sweeper=optuna` with `hydra.sweeper.storage=URL`): several
sweep processes, on one machine or many, ask the same study for trials, and a stopped study continues when a sweep
is started again on it.

Two things make that hold with the pinned Optuna 2.10.1 and SQLAlchemy 2:
- `compatible_storage`: Optuna 2.10 stamps a new storage's schema version on a connection it never commits (under
  SQLAlchemy 2 nothing autocommits), so every new RDB storage failed with an AssertionError; the stamp is now made
  in a transaction; and a storage is opened by one process at a time (`schema_lock`), so sweeps started together on
  a new database do not both create its tables;
- `AskedTrials`: a sweep stopped mid-trial (Ctrl-C, SIGTERM) tells FAIL the trials it had asked for and not
  told, so the study does not keep them RUNNING forever (a trial's number is never given out again: no trial is run
  twice).

`facenet.sweeps.SweepCallback` applies both to every Optuna sweep (hydra/sweeper=optuna, multirun_sweeps/optuna.yaml),
before the sweeper opens its storage.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from facenet.errors import first_line

log = logging.getLogger(__name__)
_patched = False


SCHEMA_LOCK = 31_2026  # the PostgreSQL advisory lock held while a process opens (and maybe creates) a storage


@contextlib.contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """While held, no other process opens the same storage: two sweeps started at once on a new database would both
    create Optuna's tables and one fail (`duplicate key value violates unique constraint`). PostgreSQL: an advisory
    lock (across machines); SQLite: a lock file beside the database (one machine); others: none."""
    if url.startswith("sqlite:///"):
        from facenet.tracking import store_lock

        with store_lock(url):
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({SCHEMA_LOCK})"))
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({SCHEMA_LOCK})"))
    engine.dispose()


def compatible_storage() -> None:
    """Let Optuna 2.10's RDB storage create its schema under SQLAlchemy 2, one process at a time (once per
    process)."""
    global _patched
    if _patched:
        return
    import alembic.migration
    from optuna.storages._rdb.storage import RDBStorage, _VersionManager

    opened = RDBStorage.__init__

    def __init__(self, url: str, *args, **kwargs) -> None:
        with schema_lock(url):
            opened(self, url, *args, **kwargs)

    RDBStorage.__init__ = __init__

    def _set_alembic_revision(self, revision: str) -> None:
        with self.engine.begin() as connection:  # committed (2.10 used engine.connect(): rolled back on close)
            context = alembic.migration.MigrationContext.configure(connection)
            context.stamp(self._create_alembic_script(), revision)

    _VersionManager._set_alembic_revision = _set_alembic_revision
    _patched = True


def check_shared(storage: str | None, study_name: str | None) -> None:
    """A study in a storage is found again by its name: a storage without `study_name` would make a new study of a
    random name each time."""
    from facenet.errors import ConfigError

    if storage and not study_name:
        raise ConfigError(
            f"hydra.sweeper.storage={storage} needs hydra.sweeper.study_name: the study every sweep process joins"
        )


class AskedTrials:
    """Remembers every trial this process asks of a study (`start`); `close_running` tells FAIL those still
    RUNNING (a sweep stopped mid-trial), so the study does not keep them RUNNING forever."""

    def __init__(self) -> None:
        self.asked: list = []
        self._original = None

    def start(self) -> None:
        import optuna

        if self._original is not None:
            return
        self._original = original = optuna.study.Study.ask
        asked = self.asked

        def ask(study, *args, **kwargs):
            trial = original(study, *args, **kwargs)
            asked.append((study, trial))
            return trial

        optuna.study.Study.ask = ask

    def stop(self) -> None:
        if self._original is not None:
            import optuna

            optuna.study.Study.ask = self._original
            self._original = None

    def close_running(self, why: str) -> int:
        """Tell FAIL every asked trial still RUNNING; how many were."""
        import optuna

        closed = 0
        for study, trial in self.asked:
            try:
                if study._storage.get_trial(trial._trial_id).state != optuna.trial.TrialState.RUNNING:
                    continue
                study._storage.set_trial_user_attr(trial._trial_id, "stopped", why)
                study._storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
                closed += 1
                log.warning("optuna trial %d of study %s told FAIL: %s", trial.number, study.study_name, why)
            except Exception as err:  # noqa: BLE001 - the storage may be what failed
                log.warning("could not close optuna trial %d: %s", trial.number, first_line(err, 200))
        self.stop()
        return closed
