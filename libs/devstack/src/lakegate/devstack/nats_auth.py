"""The `authorization` block of a deployment's nats-server, for Docker and Kubernetes.

`make up` renders its own (`Stack`); docker-compose.yml runs `nats-auth DIR` once, which keeps one
generated password per user in `DIR/users/<user>/password` (each service mounts only its own
directory) and writes `DIR/auth.conf`, which the NATS container includes. Kubernetes keeps the
passwords in a Secret and nats-server reads them from its environment: `nats-auth --env-refs`
prints the block k8s/base/nats/configmap.yaml holds, with `$LAKEGATE_NATS_<USER>_PASSWORD` in
place of each password.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lakegate.common.nats_users import SERVICE_USERS, deployment_users, tenant_subscriber
from lakegate.common.subjects import Topology
from lakegate.devstack.passwords import ensure_password


def user_names(tenants: Sequence[str]) -> list[str]:
    """Every user of a deployment: the services, one subscriber per tenant, and `admin` (an operator's)."""
    return [*SERVICE_USERS, *(tenant_subscriber(tenant) for tenant in tenants), "admin"]


def password_variable(user: str) -> str:
    """The environment variable nats-server reads a user's password from, under Kubernetes."""
    return f"LAKEGATE_NATS_{user.upper()}_PASSWORD"


def render_with_env_refs(topology: Topology, tenants: Sequence[str]) -> str:
    """The block with `$VARIABLE` references instead of passwords."""
    passwords = {name: f"${password_variable(name)}" for name in user_names(tenants)}
    return deployment_users(topology, passwords, tenants=tenants).render()


def write_auth(directory: Path, topology: Topology, tenants: Sequence[str]) -> Path:
    """Generate any missing password, keep the others, and (re)write `auth.conf` with them."""
    directory.mkdir(parents=True, exist_ok=True)
    passwords = {name: ensure_password(directory / "users" / name / "password") for name in user_names(tenants)}
    config = directory / "auth.conf"
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(deployment_users(topology, passwords, tenants=tenants).render(), encoding="utf-8")
    return config
