"""MindSpore start-up: device, execution mode and the numpy-2 warm-up, done once per process.

(`ONEDNN_MAX_CPU_ISA` is set by `facenet/__init__.py`, which Python runs before any submodule imports mindspore.)
"""

from __future__ import annotations

import contextlib
import os
import sys

import mindspore as ms
import numpy as np

from facenet.errors import ConfigError

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


def init_runtime(
    device: str = "CPU",
    device_id: int = 0,
    mode: str = "GRAPH",
    cpu_threads: int | None = None,
    distributed: bool = False,
) -> None:
    """Select device, execution mode and CPU kernel threads (None: MindSpore's default), then run one throw-away
    eager op.

    With numpy 2.x the first eager Tensor op can raise `SystemError` (MindSpore's C++ side was built against
    numpy 1.x); later ops work, so one op is spent here. The device can only be chosen before any kernel runs,
    so a second call with a different device is an error rather than a silent no-op.
    """
    mode = mode.upper()
    if mode not in _MODES:
        raise ConfigError(f"hardware.mode must be one of {sorted(_MODES)}, got {mode!r}")
    if cpu_threads is not None and cpu_threads < 1:
        raise ConfigError(f"hardware.cpu_threads must be >= 1 or null, got {cpu_threads}")
    if distributed and device.upper() != "CPU" and "DEVICE_ID" in os.environ:
        device_id = int(os.environ["DEVICE_ID"])  # msrun gives each local rank its own device
    wanted = (device.upper(), int(device_id))
    if "device" in _state:
        if _state["device"] != wanted:
            raise ConfigError(f"MindSpore already runs on {_state['device']}; cannot switch to {wanted} in-process")
        if cpu_threads is not None and cpu_threads != _state["threads"]:
            raise ConfigError(
                f"MindSpore's CPU threads are set once per process ({_state['threads'] or 'default'} "
                f"here); cannot change to {cpu_threads} in-process"
            )
        ms.set_context(mode=_MODES[mode])
        return
    try:
        ms.set_device(wanted[0], wanted[1]) if wanted[0] != "CPU" else ms.set_device("CPU")
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot use hardware.device={wanted[0]} (device_id {wanted[1]}): {first}") from None
    ms.set_context(mode=_MODES[mode])
    if cpu_threads is not None:
        ms.device_context.cpu.op_tuning.threads_num(int(cpu_threads))
    with _quiet_stderr():
        try:
            (ms.Tensor(np.zeros(1, np.float32)) + 1).asnumpy()
        except SystemError:
            pass
    _state["device"], _state["threads"] = wanted, cpu_threads
    if distributed:
        _init_data_parallel()


def _init_data_parallel() -> None:
    """Join the msrun cluster and set data-parallel mode (gradients averaged over ranks)."""
    if "MS_ROLE" not in os.environ and "RANK_TABLE_FILE" not in os.environ:
        raise ConfigError(
            "hardware.distributed=true needs the processes msrun starts: msrun --worker_num=N "
            "--local_worker_num=N --master_addr=127.0.0.1 --master_port=8118 --log_dir=LOG --join=True "
            "run.py hardware=cpu_dp ... (docs/data-parallel.md)"
        )
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    _state["rank"], _state["world"] = get_rank(), get_group_size()


def world() -> tuple[int, int]:
    """(rank, number of ranks) of this process: (0, 1) unless data-parallel."""
    return int(_state.get("rank", 0)), int(_state.get("world", 1))


class _AllReduce(ms.nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = ms.ops.AllReduce()

    def construct(self, x):
        return self.op(x)


def barrier() -> None:
    """Wait for every rank (no-op unless data-parallel): a compiled all-reduce of one number (MindSpore's eager
    barrier has no CPU kernel)."""
    if world()[1] > 1:
        _AllReduce()(ms.Tensor(np.ones(1, np.float32))).asnumpy()


def ensure_runtime(device: str = "CPU") -> None:
    """Initialise MindSpore on `device` unless this process already did (library entry points: export,
    inference), so they work both inside a run and on their own."""
    if "device" not in _state:
        init_runtime(device)


AMP_LEVELS = ("O0", "O1", "O2", "O3")


def mixed_precision(net, level: str, device: str):
    """Cast `net` for MindSpore's automatic mixed precision `level` (O0: float32, unchanged). CPU kernels run O0
    only, so any other level there is a configuration error rather than a silent no-op."""
    if level not in AMP_LEVELS:
        raise ConfigError(f"hardware.amp_level must be one of {AMP_LEVELS}, got {level!r}")
    if level == "O0":
        return net
    if device.upper() == "CPU":
        raise ConfigError(f"hardware.amp_level={level} needs a GPU or Ascend device; on CPU use O0")
    return ms.amp.auto_mixed_precision(net, level)
