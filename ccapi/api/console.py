"""The browser console served at ``GET /``: one HTML page with its script and style inline.

The page is written as three files shipped in the package, ``console.html`` (markup and style),
``console_markdown.js`` (the reply renderer) and ``console.js`` (the app); each script takes the
place of its ``<!-- name -->`` marker when the page is loaded, once per process.
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
from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class ConsolePage:
    body: str
    headers: dict[str, str]

    @classmethod
    def load(cls) -> ConsolePage:
        body = assemble(files("ccapi.api"))
        return cls(
            body,
            {
                "Content-Security-Policy": content_security_policy(body),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
                # a page that opened the console keeps no handle on it, and none may embed it as a resource
                "Cross-Origin-Opener-Policy": "same-origin",
                "Cross-Origin-Resource-Policy": "same-origin",
                "Cache-Control": "no-cache",
                "Vary": "Accept",
            },
        )


SCRIPTS = ("console_markdown.js", "console.js")


def assemble(folder: Traversable) -> str:
    """``console.html`` with each script of ``SCRIPTS`` inlined at its marker."""
    page = (folder / "console.html").read_text(encoding="utf-8")
    for name in SCRIPTS:
        marker = f"<!-- {name} -->"
        if page.count(marker) != 1:
            raise ValueError(f"console.html must hold the marker {marker} once")
        page = page.replace(marker, f"<script>\n{(folder / name).read_text(encoding='utf-8')}</script>")
    return page


def content_security_policy(html: str, connect: bool = True) -> str:
    """Allow exactly the page's own inline scripts and styles (by hash), and, with ``connect``,
    requests to this origin; nothing else loads, runs or frames it, and Trusted Types refuse every string
    that would become markup or script."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes(html, 'script')}" if "<script>" in html else "script-src 'none'",
            f"style-src {_hashes(html, 'style')}",
            "connect-src 'self'" if connect else "connect-src 'none'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            # no string ever becomes markup or script (innerHTML, a javascript: URL): the page builds DOM nodes only
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


def _hashes(html: str, tag: str) -> str:
    """CSP source expressions for every inline ``<tag>`` element's exact text."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)
