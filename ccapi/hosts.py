"""Host names as the gateway's checks read them (the browser guard, webhook targets, the mock's control routes,
the settings' host lists)."""

from __future__ import annotations

import ipaddress

#: The port a URL of each scheme means when it names none.
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP literal (which names no domain that could be pointed elsewhere), not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_ip_network(text: str) -> bool:
    """Whether ``text`` is an IP network (``10.0.0.0/8``) or a single address."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
