"""The garbage collector set for a long-running service, once it has started."""

from __future__ import annotations

import gc

#: Objects allocated (less freed) between two collections of the youngest generation; CPython's default is 700.
GC_YOUNG_THRESHOLD = 20_000


def settle_garbage_collection() -> None:
    """Freeze what start-up made (it lives as long as the process) and collect the young less often.

    Start-up leaves hundreds of thousands of objects (modules, schemas, validators). With CPython's
    defaults the youngest generation is collected every few requests, promoting the objects of the
    requests under way, and each full collection walks all of start-up's objects again: ~11% of the
    edge's CPU under load (py-spy, native frames; services/mcp-edge/README.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
