"""What the SDK logs about a Claude Code process that was stopped from outside.

When a service manager stops the gateway (systemd, launchd and container runtimes signal the
whole process group or cgroup at once), each Claude Code child gets its SIGTERM before the
gateway has disconnected it, and the SDK's message reader logs "Fatal error in message reader:
Command failed with exit code 143" at error level. That is the shutdown working, not a fault; a
turn it cuts short still ends ``failed`` or ``interrupted`` with its own log line. So that one
message, for an exit by SIGTERM (143, or -15 as asyncio reports it), is logged at info level;
any other reader failure keeps its error level.
"""

from __future__ import annotations

import logging
import re

SDK_READER_LOGGER = "claude_agent_sdk._internal.query"
_STOPPED_FROM_OUTSIDE = re.compile(r"^Fatal error in message reader: .*\(exit code: (143|-15)\)")


class StoppedChildIsNotAnError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _STOPPED_FROM_OUTSIDE.match(record.getMessage()):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def demote_shutdown_noise() -> None:
    """Install the filter on the SDK's reader logger (once, however often called)."""
    logger = logging.getLogger(SDK_READER_LOGGER)
    if not any(isinstance(f, StoppedChildIsNotAnError) for f in logger.filters):
        logger.addFilter(StoppedChildIsNotAnError())
