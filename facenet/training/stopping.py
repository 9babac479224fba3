"""Why a run stops early: a stop signal (SIGTERM / SIGINT) or the time budget (`train.max_minutes`)."""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)


class StopSignals:
    """SIGTERM / SIGINT set a flag the training loop checks at each step boundary (a second SIGINT interrupts at
    once). Installed only in the main thread; the previous handlers come back on exit."""

    def __init__(self, enabled: bool = True) -> None:
        self.received: int | None = None
        self.previous: dict[int, object] = {}
        self.enabled = enabled

    def __enter__(self) -> StopSignals:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    @property
    def name(self) -> str:
        """The received signal's name (SIGTERM, SIGINT)."""
        return signal.Signals(self.received).name if self.received is not None else ""

    def rearm(self) -> None:
        """Install the handlers again: MindSpore components can set C-level handlers of their own (its
        `mindspore.dataset` pipeline does, and SIGTERM then never reaches ours). Cheap, so done every step."""
        if self.previous and self.received is None:
            for sig in self.previous:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))  # the second one is not deferred
        log.warning("%s received: stopping after this step (checkpoint, then exit)", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class TimeBudget:
    """`train.max_minutes` of time in training steps (evaluation excluded), counted across resumes.

    `spent` holds the seconds of finished epochs (and of the run before a resume); `start()` / `stop()` bracket an
    epoch, and `exceeded()` is checked before each step.
    """

    def __init__(self, max_minutes: float | None, spent: float = 0.0) -> None:
        self.limit = float("inf") if max_minutes is None else max_minutes * 60
        self.max_minutes, self.spent = max_minutes, spent
        self._since: float | None = None

    def start(self) -> None:
        self._since = time.perf_counter()

    def running(self) -> float:
        """Seconds since `start()`."""
        return time.perf_counter() - self._since if self._since is not None else 0.0

    def exceeded(self) -> bool:
        return self.spent + self.running() > self.limit

    def stop(self) -> float:
        """Add the epoch's seconds to `spent` and return it."""
        self.spent += self.running()
        self._since = None
        return self.spent

    @property
    def used_up(self) -> bool:
        return self.spent >= self.limit
