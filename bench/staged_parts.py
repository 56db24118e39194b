"""Stage parts through `JetStreamStaging` and read them back: `python -m bench.staged_parts [--parts 130] [--kib 1900]`.

Found by the 5M-row full sync: the loader's read fetches up to 64 parts per pull request, so up to
64 times the part size is pushed to one client at once. Past nats-server's `max_pending` (64 MiB per
connection) the server flags a slow consumer and drops what does not fit, and since the staging
consumer does not ack, the dropped parts never come back: the load fails with "staged part 64
arrived where part 26 was expected". This script shows it without the services, and prints the
server's own words about it. It leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import nats
import pyarrow as pa
from lakegate.common.broker import ensure_streams
from lakegate.common.errors import LakegateError
from lakegate.common.staging import JetStreamStaging
from lakegate.common.subjects import Topology
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port


async def stage_and_read(parts: int, kib: int) -> None:
    """Write `parts` incompressible parts of about `kib` KiB, read them back, say what happened."""
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-nats-") as home:
        server = NatsServer(Path(home), free_port())
        server.start()
        try:
            connection = await nats.connect(server.url)
            try:
                js, topology = connection.jetstream(), Topology("bench")
                await ensure_streams(js, topology)
                staging = JetStreamStaging(js, topology, 8 << 20)
                writer = await staging.writer("run", "a1")
                batch = pa.RecordBatch.from_arrays([pa.array([os.urandom(kib * 1024)], pa.binary())], names=["b"])
                for _ in range(parts):
                    await writer.write(batch)
                staged = await writer.close()
                print(f"staged {staged.parts} parts, {staged.bytes >> 20} MiB")
                started, read = time.perf_counter(), 0
                try:
                    async for _batch in staging.read(staged):
                        read += 1
                    print(f"read all {read} parts back in {time.perf_counter() - started:.1f}s")
                except LakegateError as exc:
                    print(f"reading failed after {read} parts ({time.perf_counter() - started:.1f}s): {exc.message}")
            finally:
                await connection.close()
        finally:
            server.stop()
        slow = [line for line in server.log.read_text().splitlines() if "Slow Consumer" in line]
        print("nats-server says: " + (slow[0].split(" - ", 1)[-1] if slow else "nothing about slow consumers"))


def main() -> None:
    """Parse the arguments and run once."""
    parser = argparse.ArgumentParser(prog="python -m bench.staged_parts", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=130, help="parts to stage (default 130, about a 5M-row table)")
    parser.add_argument("--kib", type=int, default=1900, help="size of each part in KiB (default 1900, as measured)")
    args = parser.parse_args()
    asyncio.run(stage_and_read(args.parts, args.kib))


if __name__ == "__main__":
    main()
