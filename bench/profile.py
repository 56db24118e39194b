"""Where a forwarded tool call's CPU goes: `python -m bench.profile [--call list_sources] [--seconds 10]`.

Starts a whole `Stack` in a temporary home, drives one tool call with wrk (as `bench.edge` does)
on `--connections` keep-alive connections and, meanwhile, samples the edge and the catalog with
py-spy (`py-spy record --format raw`, on-CPU samples only: a coroutine waiting on NATS or
PostgreSQL costs nothing and is not counted). Prints each process's CPU per call and its hottest
functions, by own samples (the leaf frame) and by inclusive samples (anywhere on the stack), as
shares of that process's samples. py-spy comes from `uvx py-spy` (or PATH); sampling adds little
to the measured process. Measurement only; nothing asserts.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from lakegate.devstack.stack import Stack, StackConfig, StackPorts

from bench.edge import CALLS, measure

PROFILED = ("edge", "catalog")
_FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def _py_spy() -> list[str]:
    if shutil.which("py-spy"):
        return ["py-spy"]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    raise SystemExit("bench.profile needs py-spy: `uv tool install py-spy` (or have uvx on PATH)")


def _name(frame: str) -> str:
    """`function (path/to/module.py:12)` as `module.py:function`."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{Path(match['file']).name}:{match['function']}"


def summarize(raw: Path, top: int) -> str:
    """The hottest functions of one py-spy raw (collapsed stacks) file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_name(frame) for frame in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    lines = [f"  {total} samples"]
    lines += ["  own:"] + [f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["  inclusive:"] + [f"    {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--call", default="list_sources", choices=sorted(CALLS))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=20, help="functions shown per list")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the raw profiles go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spy = _py_spy()
    raws = {name: (args.out / f"{name}-{args.call}.txt").resolve() for name in PROFILED}
    with tempfile.TemporaryDirectory(prefix="lakegate-profile-") as home:
        # One tenant calling as fast as it can: measure serving, not refusals by the per-tenant rate limit.
        env = {
            "LAKEGATE_LOG_LEVEL": "WARNING",
            "LAKEGATE_EDGE_PROCESSES": "1",
            "LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND": "0",
        }
        with Stack(StackConfig(home=Path(home), ports=StackPorts.free(), env=env)) as stack:
            pids = {name: stack.supervisor.pid(name) for name in PROFILED}
            measure(stack.urls.mcp, CALLS[args.call], args.connections, 2, pids)  # warm up
            record = [*spy, "record", "--nonblocking", "-r", "250", "-d", str(args.seconds), "-f", "raw"]
            samplers = [
                subprocess.Popen(
                    [*record, "-o", str(raws[name]), "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name, pid in pids.items()
            ]
            figure = measure(stack.urls.mcp, CALLS[args.call], args.connections, args.seconds, pids)
            for sampler in samplers:
                sampler.wait(timeout=60)
    cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in figure["cpu_ms_per_call"].items())
    print(
        f"{args.call} c={args.connections}: {figure['calls_per_second']:.0f} calls/s, p50 {figure['p50_ms']:.1f} ms, "
        f"CPU ms/call: {cpu} (load {figure['load_average'][0][0]:.1f}, sampled)"
    )
    for name, raw in raws.items():
        print(f"==== {name} ({raw}) ====")
        print(summarize(raw, args.top) if raw.exists() else "  no samples (py-spy could not attach?)")


if __name__ == "__main__":
    main()
