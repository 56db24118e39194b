"""`make test` runs on pytest-xdist workers: tests marked `xdist_group` must all land on one worker."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

GROUPED = """
import pytest

pytestmark = pytest.mark.xdist_group("shared-stack")


@pytest.mark.parametrize("n", range(6))
def test_shares_the_modules_stack(n):
    pass
"""
LOOSE = """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_needs_nothing_shared(n):
    pass
"""


def test_a_modules_grouped_tests_all_run_on_one_worker_under_loadgroup(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent(GROUPED))
    (tmp_path / "test_loose.py").write_text(textwrap.dedent(LOOSE))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            "/dev/null",
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-p",
            "lakegate.devstack.pytest_plugin",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", result.stdout)
    grouped = {worker for worker, test in ran if test.startswith("test_grouped.py")}
    grouped_ids = [test for _, test in ran if test.startswith("test_grouped.py")]
    assert len(grouped_ids) == 6, result.stdout
    assert all(test.endswith("@shared-stack") for test in grouped_ids), grouped_ids
    assert len(grouped) == 1, ran
    assert len([test for _, test in ran if test.startswith("test_loose.py")]) == 6, result.stdout
