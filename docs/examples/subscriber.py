"""Print one tenant's lakegate sync events from a durable JetStream consumer, acknowledging each.

The consumer (--name, default `<tenant>_events`) is created on first use, from the stream's start or
from --since; later runs resume after the last acknowledged event. It works under the per-tenant NATS
permissions of docs/events.md. Needs only nats-py. Credentials go in the URL: nats://acme:secret@host:4222
"""

import argparse
import asyncio
import json
from datetime import datetime

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy


async def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--tenant", required=True)
    cli.add_argument("--url", default="nats://127.0.0.1:4222")
    cli.add_argument("--prefix", default="lakegate", help="the deployment's subject prefix")
    cli.add_argument("--name", help="durable consumer name (default: <tenant>_events)")
    cli.add_argument("--since", type=datetime.fromisoformat, help="a new consumer starts at this ISO 8601 time")
    cli.add_argument("--count", type=int, help="stop after this many events")
    args = cli.parse_args()

    nc = await nats.connect(args.url, inbox_prefix=f"_INBOX_{args.tenant}_events")  # replies only we may read
    start = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    if args.since:
        start = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=args.since)
    subject, stream = f"{args.prefix}.events.{args.tenant}.sync.*", f"{args.prefix.upper()}_EVENTS"
    events = await nc.jetstream().pull_subscribe(
        subject, durable=args.name or f"{args.tenant}_events", stream=stream, config=start
    )
    seen = 0
    while args.count is None or seen < args.count:
        try:
            (msg,) = await events.fetch(1, timeout=5)
        except nats.errors.TimeoutError:
            continue  # nothing new yet
        event = json.loads(msg.data)  # CloudEvents 1.0; `data` is the SyncOutcome; `id` is the idempotency key
        data, target = event["data"], event["data"]["target"]
        table = f"{target['catalog']}.{target['schema_name']}.{target['name']}"
        print(event["time"], event["type"], event["subject"], data["status"], data["source_table"], "->", table,
              "rows:", data["row_count"], flush=True)  # fmt: skip
        await msg.ack()
        seen += 1
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
