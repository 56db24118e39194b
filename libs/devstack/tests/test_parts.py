import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from lakegate.devstack.keys import ensure_fernet_key
from lakegate.devstack.leftovers import ChildRecords, Leftover
from lakegate.devstack.processes import StartupError, spawn
from lakegate.devstack.supervisor import Backoff


def test_restart_delays_double_from_the_first_up_to_the_limit() -> None:
    backoff = Backoff(first=1.0, limit=30.0)

    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_the_catalog_key_is_created_private_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "catalog.key"

    ensure_fernet_key(path)
    first = path.read_bytes()
    ensure_fernet_key(path)

    assert path.read_bytes() == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_catalog_key_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = ensure_fernet_key(tmp_path / "catalog.key")
    path.chmod(0o644)

    with pytest.raises(StartupError, match=r"can be read by other users .* run `chmod 600 "):
        ensure_fernet_key(path)


def test_a_process_left_behind_by_a_killed_up_is_stopped_by_the_next(tmp_path: Path) -> None:
    orphan = spawn([sys.executable, "-c", "import time; time.sleep(600)"], log=tmp_path / "orphan.log")
    ChildRecords(tmp_path / "run").record("nats", orphan)

    reaped = ChildRecords(tmp_path / "run").reap()

    assert reaped == [Leftover("nats", orphan.pid)]
    assert orphan.wait(10) is not None
    assert not list((tmp_path / "run").glob("*.pid"))


def test_a_record_of_a_process_that_already_ended_is_dropped_quietly(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ChildRecords(tmp_path / "run").record("loader", ended)
    ended.wait()

    assert ChildRecords(tmp_path / "run").reap() == []
    assert not list((tmp_path / "run").glob("*.pid"))


def test_a_catalog_key_file_with_rotating_keys_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "catalog.key"
    path.write_text(f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}\n")
    path.chmod(0o600)

    assert ensure_fernet_key(path) == path
