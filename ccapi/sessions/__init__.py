"""Sessions and turns: the rules of the API, independent of HTTP and of the SDK."""

from ccapi.sessions.eventlog import KEEPALIVE, EventLog
from ccapi.sessions.params import ForkPoint, History, NewSession, TurnRequest
from ccapi.sessions.service import SessionService
from ccapi.sessions.turns import TurnRun

__all__ = ["KEEPALIVE", "EventLog", "ForkPoint", "History", "NewSession", "SessionService", "TurnRequest", "TurnRun"]
