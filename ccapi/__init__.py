"""CC API: a session-oriented HTTP gateway over the Claude Agent SDK."""

__version__ = "0.1.0"
