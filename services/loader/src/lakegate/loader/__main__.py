"""`python -m lakegate.loader`: run the loader until SIGTERM or SIGINT."""

from __future__ import annotations

from lakegate.common.service import run_service
from lakegate.loader.app import SERVICE, serve
from lakegate.loader.config import LoaderSettings


def main() -> None:
    """Read the settings from the environment and serve."""
    settings = LoaderSettings()
    run_service(SERVICE, settings, lambda: serve(settings))


if __name__ == "__main__":
    main()
