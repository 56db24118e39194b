import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from lakegate.devstack.stack import StackConfig

StandinConfig = Callable[..., StackConfig]

# `up` as `python -m lakegate.devstack up` runs it, with stand-ins for the services.
RUN_UP = """
import json, logging, sys
from pathlib import Path
from lakegate.devstack.__main__ import up
from lakegate.devstack.stack import StackConfig, StackPorts
from lakegate.devstack.supervisor import Backoff
spec = json.loads(sys.argv[1])
config = StackConfig(home=Path(spec["home"]), ports=StackPorts(**spec["ports"]),
                     commands={k: tuple(v) for k, v in spec["commands"].items()}, backoff=Backoff(first=0.1))
logging.basicConfig(level=logging.INFO)
sys.exit(up(config))
"""


def start_up(config: StackConfig) -> subprocess.Popen[str]:
    spec = {
        "home": str(config.home),
        "ports": {name: getattr(config.ports, name) for name in config.ports.__dataclass_fields__},
        "commands": {name: list(command) for name, command in config.commands.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-c", RUN_UP, json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """Lines of stdout up to the one holding `marker` (or all of it, if the process ends first)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            break
    return "".join(seen)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_up_prints_how_to_connect_and_stops_everything_on_a_signal(
    lakegate_home: Path, standin_config: StandinConfig, sig: signal.Signals
) -> None:
    config = standin_config(lakegate_home)
    proc = start_up(config)
    try:
        printed = read_until(proc, "Press Ctrl-C")
        status = subprocess.run(
            [sys.executable, "-m", "lakegate.devstack", "--home", str(config.home), "status"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        proc.send_signal(sig)
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    mcp = f"http://127.0.0.1:{config.ports.edge}/mcp"
    assert f"MCP endpoint (streamable HTTP): {mcp}" in printed
    assert f"claude mcp add --transport http lakegate {mcp}" in printed
    assert f'"LAKEGATE_NATS_URL": "nats://127.0.0.1:{config.ports.nats}"' in printed
    # The stdio edge Claude Desktop starts logs in to NATS as the edge, with the password file of the home.
    assert '"LAKEGATE_NATS_USER": "edge"' in printed
    assert f'"LAKEGATE_NATS_PASSWORD_FILE": "{config.home / "keys" / "nats" / "edge.password"}"' in printed
    assert str(config.home / "logs") in printed
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" ready ") == 6
    assert proc.returncode == 0, errors
    assert "lakegate stopped" in errors
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(config.home) in " ".join(p.info["cmdline"] or [])]


def test_status_says_when_nothing_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lakegate.devstack", "--home", str(tmp_path / "home"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )

    assert result.returncode == 1
    assert "lakegate is not running from" in result.stdout


def test_token_create_stores_only_a_hash_and_prints_claude_code_and_desktop_configs_with_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakegate.common.api_tokens import ApiTokenFile
    from lakegate.devstack.__main__ import main

    assert main(["--home", str(tmp_path), "token", "create", "--tenant", "acme", "--scopes", "read,write"]) == 0

    printed = capsys.readouterr().out
    token = next(word for word in printed.split() if word.startswith("lg_"))
    stored = ApiTokenFile.load(tmp_path / "keys" / "api-tokens.json")
    entry = stored.find(token)
    assert entry is not None
    assert (entry.tenant_id, entry.scopes) == ("acme", ["lakegate:read", "lakegate:write"])
    assert token not in (tmp_path / "keys" / "api-tokens.json").read_text()
    assert f'--header "Authorization: Bearer {token}"' in printed
    block = printed[printed.index("  {\n") : printed.index("\n  }\n") + 4]
    desktop = json.loads(textwrap.dedent(block))
    server = desktop["mcpServers"]["lakegate"]
    assert server["env"]["LAKEGATE_AUTHORIZATION"] == f"Bearer {token}"
    assert "Authorization:${LAKEGATE_AUTHORIZATION}" in server["args"]


def test_token_create_refuses_an_unknown_scope_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakegate.devstack.__main__ import main

    assert main(["--home", str(tmp_path), "token", "create", "--scopes", "read,root"]) == 2
    assert "scope 'root' is not one of lakegate:read, lakegate:write, lakegate:admin" in capsys.readouterr().err
    assert not (tmp_path / "keys" / "api-tokens.json").exists()
