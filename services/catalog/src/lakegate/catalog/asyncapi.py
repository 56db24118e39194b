"""`python -m lakegate.catalog.asyncapi [PATH | -]`: write the AsyncAPI document of lakegate's public events.

FastStream generates it from the very publishers the catalog sends the events through
(`publisher.declare_sync_events`), so the document cannot drift from what subscribers receive.
It is checked in as `docs/asyncapi.json` (the default PATH, relative to the repository root); a
test fails when the checked-in file differs from a fresh one, so regenerate it after changing the
event contract. `-` prints it instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from lakegate.catalog.publisher import TENANT_PARAMETER, declare_sync_events
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import Topology

DEFAULT_PATH = Path("docs/asyncapi.json")
TITLE = "lakegate public events"
VERSION = "1.0.0"
DESCRIPTION = (
    "Sync outcomes that lakegate publishes for subscribers, as CloudEvents 1.0 JSON (structured mode) on "
    "JetStream stream `LAKEGATE_EVENTS` (kept 14 days, replayable). Subjects hang off the deployment's prefix "
    "(`lakegate` by default) and carry the tenant id, so NATS permissions can limit a subscriber to its own "
    "tenant. Each event's `id` is unique per outcome of a run; a redelivered event has the same id. "
    "See docs/events.md."
)
_TENANT = TENANT_PARAMETER.strip("{}")


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the public events under the default prefix, as JSON values."""
    broker = NatsBroker(NatsSettings.model_fields["url"].default, description="A NATS server with JetStream")
    declare_sync_events(broker, Topology())
    spec = AsyncAPI(broker, title=TITLE, version=VERSION, description=DESCRIPTION, schema_version="3.0.0")
    generated: dict[str, Any] = json.loads(spec.to_specification().to_json())
    # AsyncAPI 3 wants every `{expression}` of a channel address declared; FastStream leaves publishers' out.
    for channel in generated.get("channels", {}).values():
        if TENANT_PARAMETER in channel.get("address", ""):
            channel.setdefault("parameters", {})[_TENANT] = {
                "description": "The tenant the run belongs to (a-z, 0-9, _); a subscriber's NATS permissions "
                "should name its own."
            }
    return generated


def render() -> str:
    """The document as the checked-in file holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the document to PATH (default `docs/asyncapi.json`), or print it for `-`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        sys.exit("usage: python -m lakegate.catalog.asyncapi [PATH | -]")
    target = args[0] if args else str(DEFAULT_PATH)
    text = render()
    if target == "-":
        sys.stdout.write(text)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
