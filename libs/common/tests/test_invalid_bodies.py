"""A body that does not fit its model is refused naming the subject, the model and the field, never its values."""

from __future__ import annotations

import pytest
from lakegate.common.delivery import parsed_body
from lakegate.common.errors import InvalidInput
from pydantic import BaseModel


class Login(BaseModel):
    user: str
    port: int


def test_a_malformed_message_is_refused_by_field_without_the_values_it_carried() -> None:
    body = b'{"user": "reader", "port": "hunter2-secret"}'

    with pytest.raises(InvalidInput) as refused:
        parsed_body(Login)("lakegate.cmd.login", body)

    message = refused.value.message
    assert message.startswith("message on lakegate.cmd.login is not a valid Login: port: ")
    assert message.endswith("; the sender must be fixed")
    assert "hunter2-secret" not in message
