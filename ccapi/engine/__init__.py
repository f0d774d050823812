"""Everything that touches the Claude Agent SDK: live engines, their pool, and
translation of SDK messages into CC API events."""

from ccapi.engine.errors import EngineError
from ccapi.engine.live import LiveEngine
from ccapi.engine.pool import EnginePool, PoolExhausted
from ccapi.engine.spec import EngineSpec
from ccapi.engine.translate import EngineEvent, TurnOutcome, TurnTranslator

__all__ = [
    "EngineError",
    "EngineEvent",
    "EnginePool",
    "EngineSpec",
    "LiveEngine",
    "PoolExhausted",
    "TurnOutcome",
    "TurnTranslator",
]
