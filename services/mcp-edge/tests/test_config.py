"""Edge settings: loopback by default, and no anonymous callers from the network by accident."""

from __future__ import annotations

import pytest
from lakegate.edge.config import EdgeSettings
from pydantic import ValidationError


def test_the_defaults_serve_http_on_loopback_for_loopback_origins() -> None:
    settings = EdgeSettings()

    assert (settings.transport, settings.host, settings.port, settings.path) == ("http", "127.0.0.1", 8085, "/mcp")
    assert settings.allowed_origins == ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    assert "127.0.0.1:*" in settings.trusted_hosts


def test_lists_are_read_from_comma_separated_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEGATE_EDGE_ALLOWED_ORIGINS", "https://app.example, http://localhost:*")
    monkeypatch.setenv("LAKEGATE_EDGE_ALLOWED_HOSTS", "lakegate.example:*")
    monkeypatch.setenv("LAKEGATE_EDGE_TRANSPORT", "stdio")

    settings = EdgeSettings()

    assert settings.allowed_origins == ["https://app.example", "http://localhost:*"]
    assert "lakegate.example:*" in settings.trusted_hosts
    assert settings.transport == "stdio"


def test_a_public_address_without_authentication_is_refused_unless_allowed() -> None:
    with pytest.raises(ValidationError, match=r"0\.0\.0\.0 would let anyone.*ALLOW_ANONYMOUS_REMOTE"):
        EdgeSettings(host="0.0.0.0")

    assert EdgeSettings(host="0.0.0.0", allow_anonymous_remote=True).host == "0.0.0.0"
    assert EdgeSettings(host="0.0.0.0", transport="stdio").transport == "stdio"


def test_a_default_tenant_that_is_not_a_slug_is_refused() -> None:
    with pytest.raises(ValidationError, match="DEFAULT_TENANT"):
        EdgeSettings(default_tenant="Acme Corp")
