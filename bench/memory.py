"""Peak resident memory of processes, per process, from the kernel.

`getrusage(...).ru_maxrss` is not used: on Linux a process inherits its parent's high-water mark
across fork + exec, so a child of a 150 MB parent reports at least 150 MB whatever it uses itself.
`VmHWM` in `/proc/<pid>/status` belongs to the process's own address space, which exec replaces,
and writing `5` to `/proc/<pid>/clear_refs` starts it again from the current RSS, so a long-running
service's peak can be measured per sync. A sampler (psutil, every few milliseconds) runs beside it,
as a check and for processes whose `/proc` files we may not read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import psutil

#: How often the sampler looks at every process, in seconds.
SAMPLE_INTERVAL = 0.02


def high_water(pid: int | str = "self") -> int | None:
    """The process's RSS high-water mark in bytes (`VmHWM`); None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_high_water(pid: int) -> bool:
    """Start the process's high-water mark again from its current RSS; False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss(pid: int) -> int | None:
    """The process's resident memory now, in bytes; None once it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


class PeakSampler:
    """Samples the RSS of named processes in a thread while the block runs; keeps each one's maximum.

    On exit it also reads each process's `VmHWM` (reset on entry), which catches peaks shorter than
    the sampling interval; `peaks` is the larger of the two.
    """

    def __init__(self, pids: Mapping[str, int], interval: float = SAMPLE_INTERVAL) -> None:
        self.pids = dict(pids)
        self.sampled: dict[str, int] = dict.fromkeys(self.pids, 0)
        self.kernel: dict[str, int | None] = dict.fromkeys(self.pids)
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._reset: dict[str, bool] = {}

    @property
    def peaks(self) -> dict[str, int]:
        """Each process's peak RSS in bytes during the block."""
        return {name: max(self.sampled[name], self.kernel[name] or 0) for name in self.pids}

    def __enter__(self) -> PeakSampler:
        self._reset = {name: reset_high_water(pid) for name, pid in self.pids.items()}
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()
        for name, pid in self.pids.items():
            # Without a reset the kernel's mark may come from before the block: do not trust it then.
            self.kernel[name] = high_water(pid) if self._reset[name] else None

    def _sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.sampled[name] = max(self.sampled[name], rss(pid) or 0)
            if self._done.wait(self._interval):
                return
