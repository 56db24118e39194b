"""`python -m lakegate.extractor`: run the extractor until SIGTERM or SIGINT."""

from lakegate.common.service import run_service
from lakegate.extractor.app import SERVICE, serve
from lakegate.extractor.config import ExtractorSettings


def main() -> None:
    """Read the settings once and serve."""
    settings = ExtractorSettings()
    run_service(SERVICE, settings, lambda: serve(settings))


if __name__ == "__main__":
    main()
