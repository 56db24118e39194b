"""`python -m lakegate.catalog`: run the catalog until SIGTERM or SIGINT."""

from __future__ import annotations

import sys

from lakegate.catalog.app import SERVICE, serve
from lakegate.catalog.config import CatalogSettings
from lakegate.common.errors import LakegateError
from lakegate.common.service import run_service


def main() -> None:
    """Read the settings from the environment and serve; a configuration error ends with its message."""
    settings = CatalogSettings()
    try:
        run_service(SERVICE, settings, lambda: serve(settings))
    except LakegateError as exc:
        sys.exit(f"lakegate catalog cannot start: {exc}")


if __name__ == "__main__":
    main()
