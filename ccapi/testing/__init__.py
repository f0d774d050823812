"""Offline test support: a scriptable mock of the Anthropic Messages API (see :mod:`ccapi.testing.mock_model`).

The names are loaded on first use rather than imported here, so that ``python -m ccapi.testing.mock_model`` runs
the module once as ``__main__`` instead of also importing it through this package (which makes runpy warn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccapi.testing.mock_model import MockError, MockModel, RecordedRequest, Reply, ToolUse

__all__ = ["MockError", "MockModel", "RecordedRequest", "Reply", "ToolUse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ccapi.testing import mock_model

        return getattr(mock_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
