"""`python -m bench.profiled OUT MODULE [ARGS]`: run a service's module with cProfile on between SIGUSR1 and SIGUSR2.

py-spy misleads on this 2-core machine: a socket write that wakes the peer process hands it the
core, and the writer, preempted but not idle, is sampled in `writelines` for as long as it waits
(the catalog showed ~70% "in" two writes while /proc said 12% of its CPU was system time).
cProfile counts function calls, which do not move with the machine's load, and their own CPU
time (`time.process_time` as its timer, which costs a system call per event: read the shares,
not the absolute times).
SIGUSR1 starts counting, SIGUSR2 stops and writes the `pstats` file OUT. Measurement only.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    out, module, *rest = sys.argv[1:]
    # CPU time, not wall time: a function preempted in a socket write is not charged for the wait.
    profile = cProfile.Profile(time.process_time)

    def start(_: int, __: FrameType | None) -> None:
        profile.enable()

    def stop(_: int, __: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
