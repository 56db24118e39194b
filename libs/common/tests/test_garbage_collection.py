"""A service's start-up objects are frozen out of the collector, and its young generation collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from lakegate.common.garbage import GC_YOUNG_THRESHOLD, settle_garbage_collection


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as the test found it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_what_start_up_made_is_frozen_and_a_later_cycle_is_still_collected() -> None:
    made_at_start_up = [object() for _ in range(1000)]

    settle_garbage_collection()

    assert gc.get_freeze_count() >= len(made_at_start_up)
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert not any(obj is made_at_start_up for obj in gc.get_objects())  # frozen: out of the collector's sight

    class Node:
        other: Node

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2  # cycles made after start-up are still found
