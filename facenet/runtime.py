"""MindSpore start-up: device, execution mode and the numpy-2 warm-up, done once per process."""

from __future__ import annotations

import contextlib
import os
import sys

import mindspore as ms
import numpy as np

import facenet  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore is imported)

_MODES = {"GRAPH": ms.GRAPH_MODE, "PYNATIVE": ms.PYNATIVE_MODE}
_state: dict[str, object] = {}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level writes to stderr (numpy's C-API warning is printed from C, not through `warnings`)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def init_runtime(device: str = "CPU", device_id: int = 0, mode: str = "GRAPH") -> None:
    """Select device and execution mode, then run one throw-away eager op.

    With numpy 2.x the first eager Tensor op can raise `SystemError` (MindSpore's C++ side was built against
    numpy 1.x); later ops work, so one op is spent here. The device can only be chosen before any kernel runs,
    so a second call with a different device is an error rather than a silent no-op.
    """
    mode = mode.upper()
    if mode not in _MODES:
        raise ValueError(f"hardware.mode must be one of {sorted(_MODES)}, got {mode!r}")
    wanted = (device.upper(), int(device_id))
    if "device" in _state:
        if _state["device"] != wanted:
            raise RuntimeError(f"MindSpore already runs on {_state['device']}; cannot switch to {wanted} in-process")
        ms.set_context(mode=_MODES[mode])
        return
    try:
        ms.set_device(wanted[0], wanted[1]) if wanted[0] != "CPU" else ms.set_device("CPU")
    except RuntimeError as err:
        raise RuntimeError(f"cannot use device {wanted[0]}:{wanted[1]}: {err}".splitlines()[0]) from None
    ms.set_context(mode=_MODES[mode])
    with _quiet_stderr():
        try:
            (ms.Tensor(np.zeros(1, np.float32)) + 1).asnumpy()
        except SystemError:
            pass
    _state["device"] = wanted
