"""MindSpore start-up: device, execution mode and the numpy-2 warm-up, done once per process.

(`ONEDNN_MAX_CPU_ISA` is set by `facenet/__init__.py`, which Python runs before any submodule imports mindspore.)
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import mindspore as ms
import numpy as np

from facenet.errors import ConfigError, first_line

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
    nodes: int | None = None,
    ranks_per_node: int | None = None,
    log_dir: Path | None = None,
) -> None:
    """Select device, execution mode and CPU kernel threads (None: MindSpore's default), then run one throw-away
    eager op. `distributed`: join the data-parallel ranks (msrun's, or a SLURM / submitit job's tasks: see
    `_join`), which must number `nodes` x `ranks_per_node` (where given); `log_dir`: a scheduler started here
    logs there.

    With numpy 2.x the first eager Tensor op can raise `SystemError` (MindSpore's C++ side was built against
    numpy 1.x); later ops work, so one op is spent here. The device can only be chosen before any kernel runs,
    so a second call with a different device is an error rather than a silent no-op.
    """
    mode = mode.upper()
    if mode not in _MODES:
        raise ConfigError(f"hardware.mode must be one of {sorted(_MODES)}, got {mode!r}")
    if cpu_threads is not None and cpu_threads < 1:
        raise ConfigError(f"hardware.cpu_threads must be >= 1 or null, got {cpu_threads}")
    if not distributed and (nodes or 1, ranks_per_node or 1) != (1, 1):
        raise ConfigError(
            f"hardware.nodes={nodes}, hardware.ranks_per_node={ranks_per_node} need data parallel "
            "(hardware=cpu_dp | gpu_dp | ascend_dp); one process is 1 node x 1 rank"
        )
    launcher = _join(log_dir) if distributed and "device" not in _state else None
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
        first = first_line(err)
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
        _init_data_parallel(nodes, ranks_per_node, launcher or "msrun")


def _join(log_dir: Path | None) -> str:
    """Before the device is chosen: under msrun (or a rank table) nothing to do; inside a SLURM or submitit job with
    tasks, set MindSpore's cluster variables from the job's environment and start the scheduler on global rank 0
    (`facenet.jobs.environment`). Returns what started the ranks."""
    if "MS_ROLE" in os.environ or "RANK_TABLE_FILE" in os.environ:
        return "msrun"
    from facenet.jobs.environment import job_tasks, join_cluster

    tasks = job_tasks()
    if tasks is None:
        raise ConfigError(
            "hardware.distributed=true needs several processes: msrun's (msrun --worker_num=N --local_worker_num=N "
            "--master_addr=127.0.0.1 --master_port=8118 --log_dir=LOG --join=True run.py hardware=cpu_dp ...; "
            "docs/data-parallel.md), or a SLURM / submitit job's tasks (hydra/launcher=submitit_slurm; "
            "docs/cluster.md)"
        )
    join_cluster(tasks, log_dir or Path.cwd())  # the scheduler it starts on rank 0 outlives it by at most a minute
    return tasks.source


def _init_data_parallel(nodes: int | None = None, ranks_per_node: int | None = None, launcher: str = "msrun") -> None:
    """Join the cluster and set data-parallel mode (gradients averaged over ranks)."""
    from mindspore.communication import get_group_size, get_rank, init

    from facenet.jobs.environment import check_world

    if "MS_ROLE" not in os.environ and "RANK_TABLE_FILE" not in os.environ:
        _join(None)
    init()
    if nodes is not None and ranks_per_node is not None:
        check_world(get_group_size(), nodes, ranks_per_node, launcher)
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


def _all_reduce(values: np.ndarray) -> np.ndarray:
    """The sum over ranks of `values` (float32), through one compiled all-reduce cell kept for the process."""
    if "all_reduce" not in _state:
        _state["all_reduce"] = _AllReduce()
    return _state["all_reduce"](ms.Tensor(values.astype(np.float32))).asnumpy()


def barrier() -> None:
    """Wait for every rank (no-op unless data-parallel): a compiled all-reduce of one number (MindSpore's eager
    barrier has no CPU kernel)."""
    if world()[1] > 1:
        _all_reduce(np.ones(1))


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on any (an all-reduce of one number; no-op in one process): lets
    data-parallel ranks agree to stop (a signal, the time budget) at the same step."""
    if world()[1] == 1:
        return flag
    return float(_all_reduce(np.array([float(flag)]))[0]) > 0


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
