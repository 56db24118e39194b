"""`python -m lakegate.catalog`: run the catalog until SIGTERM or SIGINT.

`python -m lakegate.catalog rotate-keys` instead encrypts every stored source secret again with
the first key of LAKEGATE_CATALOG_SECRET_KEY(_FILE), and exits.
"""

from __future__ import annotations

import asyncio
import sys

from lakegate.catalog.app import SERVICE, serve
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.rotation import rotate_keys
from lakegate.common.errors import LakegateError
from lakegate.common.service import run_service

USAGE = "usage: python -m lakegate.catalog [rotate-keys]"


def main(argv: list[str] | None = None) -> None:
    """Read the settings from the environment and serve (or rotate keys); a bad setting ends with its message."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["rotate-keys"]):
        sys.exit(f"{USAGE}\nunknown arguments: {' '.join(args)}")
    settings = CatalogSettings()
    if args == ["rotate-keys"]:
        try:
            rewritten = asyncio.run(rotate_keys(settings))
        except LakegateError as exc:
            sys.exit(f"lakegate catalog cannot rotate its keys: {exc}")
        print(f"re-encrypted {rewritten} source secret(s) with the first key; the other keys may now be removed")
        return
    try:
        run_service(SERVICE, settings, lambda: serve(settings))
    except LakegateError as exc:
        sys.exit(f"lakegate catalog cannot start: {exc}")


if __name__ == "__main__":
    main()
