"""How many processes the local stack's MCP edge serves with: two, so a client gets both cores'
worth of calls, unless `LAKEGATE_EDGE_PROCESSES` says otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from lakegate.devstack.settings import StackSettings
from lakegate.devstack.stack import Stack


def edge_environment(settings: StackSettings) -> Mapping[str, str]:
    """The environment the stack would start its edge with."""
    [edge] = [launch for launch in Stack(settings.config()).supervisor.launches if launch.name == "edge"]
    return edge.env


def test_the_stack_starts_its_edge_with_two_processes_unless_lakegate_edge_processes_says_otherwise(
    lakegate_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEGATE_HOME", str(lakegate_home))
    monkeypatch.delenv("LAKEGATE_EDGE_PROCESSES", raising=False)
    default = edge_environment(StackSettings())
    monkeypatch.setenv("LAKEGATE_EDGE_PROCESSES", "1")
    one = edge_environment(StackSettings())

    assert (default["LAKEGATE_EDGE_PROCESSES"], one["LAKEGATE_EDGE_PROCESSES"]) == ("2", "1")
