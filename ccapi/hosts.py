"""Host names as the gateway's checks read them (the browser guard, webhook targets, the mock's control routes)."""

from __future__ import annotations

import ipaddress


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP literal (which names no domain that could be pointed elsewhere), not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
