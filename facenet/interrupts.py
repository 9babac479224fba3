"""Ctrl-C and SIGTERM anywhere: the signal becomes an exception in the main thread (`Interrupted`, a
KeyboardInterrupt that names its signal), so every `finally` runs, partial outputs are removed, the MLflow run is
closed KILLED, and the command ends with one line instead of a traceback (SIGTERM would otherwise end the process
with no cleanup at all). The training loop defers the first signal to a step boundary (`training/stopping.py`).
Worker processes ignore both signals: the parent handles them and stops its pool."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signal_name` says which."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name


def signal_name(err: BaseException) -> str:
    """The signal behind an interrupt (a plain KeyboardInterrupt is Ctrl-C)."""
    return getattr(err, "signal_name", "SIGINT")


def _raise(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise `Interrupted` in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within: SIGINT / SIGTERM are held and raised as `Interrupted` on leaving. For code that holds a lock an
    exception must not escape from, such as a process pool's submissions (an interrupt there leaves the pool's
    shutdown lock taken, and the shutdown that follows waits forever)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise Interrupted(signal.Signals(received[0]).name)


def pool_map(pool: ProcessPoolExecutor, fn, jobs, chunksize: int = 8):
    """`pool.map`, its submissions shielded from interrupts (`deferred`)."""
    with deferred():
        return pool.map(fn, jobs, chunksize=chunksize)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers ignore Ctrl-C / SIGTERM (no traceback per worker); if the parent is interrupted
    (or fails), work not started is cancelled and the running items finish before the exception goes on."""
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_ignore_signals)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def partial_file(path) -> Iterator:
    """Write `path` through a temporary name beside it, renamed into place only when the block completes: an
    interrupt or error leaves no half-written file (and removes the temporary one)."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")  # the suffix kept: np.savez adds one
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
