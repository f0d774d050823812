"""The docs keep up with the code: every setting the gateway reads is on the configuration page, every
route it serves is on the API page (compat routes may be on the compat page), and the README stays a
front door. Fast: no gateway, no Claude Code; the names come from the code itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ccapi.app import create_app
from ccapi.config import Settings
from ccapi.paths import HOME_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 250
_PARAM = re.compile(r"<[^>]+>")


class _RecordingEnv(dict[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def settings_read() -> set[str]:
    """Every CC_API_* name ``Settings.from_env`` reads, plus the state directory ``paths`` reads."""
    env = _RecordingEnv()
    Settings.from_env(env)
    return {name for name in env.asked if name.startswith("CC_API_")} | {HOME_VARIABLE}


def documented_settings() -> set[str]:
    """The names in the first column of the configuration page's table."""
    text = (DOCS / "configuration.md").read_text()
    return set(re.findall(r"^\| `(CC_API_[A-Z0-9_]+)` \|", text, flags=re.M))


def test_every_setting_the_gateway_reads_is_on_the_configuration_page() -> None:
    read = settings_read()
    assert len(read) >= 30  # guards the recording itself: an empty set would prove nothing
    missing = read - documented_settings()
    assert not missing, f"add these to docs/configuration.md: {sorted(missing)}"


def test_the_configuration_page_lists_no_setting_the_gateway_ignores() -> None:
    stale = documented_settings() - settings_read()
    assert not stale, f"docs/configuration.md documents settings nothing reads: {sorted(stale)}"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """(method, path) of every route, path parameters as ``{}``; built as tests/test_auth_routes.py does."""
    app = create_app(Settings(home=tmp_path_factory.mktemp("docs-routes")), name="ccapi_docs_walk")
    found = set()
    for route in app.router.routes:
        path = "/" + _PARAM.sub("{}", route.path)
        for method in route.methods:
            found.add((method, path))
    return sorted(found)


def _documented(method: str, path: str, text: str) -> bool:
    """``METHOD /path`` in one table cell or line (``POST /v1/a`, `/v1/b``` counts for both), with any
    name inside each ``{…}``."""
    pattern = r"\{[a-z_]+\}".join(re.escape(part) for part in path.split("{}"))
    cell = rf"\b{method}\b[^|\n]*?(?<![\w/}}\]]){pattern}(?![\w/{{])"
    return re.search(cell, text) is not None


def test_every_route_is_on_the_api_page(routes: list[tuple[str, str]]) -> None:
    assert len(routes) >= 20
    api = (DOCS / "api.md").read_text()
    compat = (DOCS / "compat.md").read_text()
    missing = [
        f"{method} {path}"
        for method, path in routes
        if not _documented(method, path, api) and not (path.startswith("/v1/") and _documented(method, path, compat))
    ]
    assert not missing, f"add these routes to docs/api.md (or /v1 ones to docs/compat.md): {missing}"


def test_route_matching_is_exact() -> None:
    """Guards ``_documented``: a path that is only a prefix of a documented one does not count."""
    text = "| `GET /api/sessions/{id}/events` | the log |"
    assert _documented("GET", "/api/sessions/{}/events", text)
    assert not _documented("GET", "/api/sessions/{}", text)
    assert not _documented("POST", "/api/sessions/{}/events", text)


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference text into docs/"


def test_links_between_the_docs_resolve() -> None:
    """Every relative link from the README or a docs page names a file that exists and, with ``#anchor``,
    a heading in it."""
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{page.name}: {target}")
    assert not broken, broken


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", page.read_text(), flags=re.M) if page.suffix == ".md" else []
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}
