"""MindSpore's cluster scheduler for a job started without msrun (`facenet.jobs.environment.join_cluster` runs it
on global rank 0 with `MS_ROLE=MS_SCHED`): it waits in `init()` until every worker has joined and left, then
exits; and at the latest `GRACE` seconds after the process that started it (rank 0) is gone, so a failed job leaves
no scheduler behind. It ignores SIGTERM / SIGINT: SLURM signals every process of a pre-empted job, and the ranks
still need it while they agree to stop and checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time

GRACE = 30.0


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    time.sleep(GRACE)  # the other ranks leave the cluster (or have failed) by then
    os._exit(0)


def main() -> None:
    import mindspore as ms
    from mindspore.communication import init

    for sig in (signal.SIGTERM, signal.SIGINT):  # a pre-empted job's ranks stop, checkpoint and leave first
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(os.getppid(),), daemon=True).start()

    ms.set_device("CPU")  # the scheduler computes nothing; its collectives are mccl whatever the workers use
    init()  # returns only by ending the process, when the cluster is done


if __name__ == "__main__":
    main()
