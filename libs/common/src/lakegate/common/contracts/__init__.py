"""Message contracts: one pydantic model per message, each with a version.

This package depends only on pydantic, so any subscriber can import it.
"""

from lakegate.common.contracts.base import Message

__all__ = ["Message"]
