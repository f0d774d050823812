"""The browser console served at ``GET /``: one HTML file with its script and style inline.

No build step and no CDN, so it works offline and from a wheel. Its Content-Security-Policy
allows exactly the inline script and style it ships (by hash) and requests to this origin
only, so text from the model rendered in the page can never run or load anything.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class ConsolePage:
    body: str
    headers: dict[str, str]

    @classmethod
    def load(cls) -> ConsolePage:
        body = (files("ccapi.api") / "console.html").read_text(encoding="utf-8")
        policy = "; ".join(
            [
                "default-src 'none'",
                f"script-src {_hashes(body, 'script')}",
                f"style-src {_hashes(body, 'style')}",
                "connect-src 'self'",
                "img-src 'self' data:",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            ]
        )
        return cls(
            body,
            {
                "Content-Security-Policy": policy,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
                "Cache-Control": "no-cache",
                "Vary": "Accept",
            },
        )


def _hashes(html: str, tag: str) -> str:
    """CSP source expressions for every inline ``<tag>`` element's exact text."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)
