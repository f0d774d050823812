from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccapi.config import Settings
from ccapi.testing import MockModel
from ccapi.webhook_rules import new_secret
from tests import browser, console_page, postgres
from tests.gateway import Gateway, free_port
from tests.gateway import test_environment as offline_environment  # aliased: pytest would collect test_*

LONGEST_FILES = (
    "test_packaging.py",
    "test_load.py",
    "test_compat_clients.py",
    "test_restart.py",
    "test_cli.py",
    "test_several_hosts.py",
    "test_compat_longday.py",
    "test_pool.py",
)
"""The files that take longest in `make test` (by its `--durations` list), longest first. A stale entry costs only
the order, never a test. Not test_schema_fuzz: beside the load test at the start it outran its 180 s timeout twice
(~200 s; 61 s when it ran late)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, then the files with the most slow tests (a stable sort): `make test` hands whole
    files to its workers in this order (`--no-loadscope-reorder`), so the long files start early instead of leaving
    one worker busy alone at the end."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        return (LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES), -slow[item.path])

    items.sort(key=rank)


@pytest.fixture(scope="session")
def mock_model() -> Iterator[MockModel]:
    """The bundled mock Anthropic API on a free loopback port, shared by the whole run."""
    with MockModel() as mock:
        yield mock


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    """One real PostgreSQL server for the run, on a free loopback port."""
    bin_dir, why_not = postgres.find_or_install()
    if bin_dir is None:
        pytest.skip(why_not)
    server, process = postgres.start(bin_dir)
    yield server
    postgres.stop(server, process)


@pytest.fixture(autouse=True)
def _fresh_mock(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that uses the run's mock starts with it empty, and leaves no scripted reply behind: a module-scoped
    fixture that a later test (on the same worker) sets up without naming the mock would take it."""
    if "mock_model" not in request.fixturenames:
        yield
        return
    mock = request.getfixturevalue("mock_model")
    mock.clear()
    mock.clear_script()
    yield
    mock.clear_script()


@pytest.fixture
def user_umask() -> Iterator[int]:
    """The common default umask (022) for what this test starts, whatever the runner's is."""
    previous = os.umask(0o022)
    yield 0o022
    os.umask(previous)


BACKENDS = ("sqlite", pytest.param("jsondir", marks=pytest.mark.slow))
"""The store backends an end-to-end module runs on: every backend's store contract is checked in-process in
test_store_backends, so only test_turns, test_crash, test_private_state and test_restart's resume-from-the-store test
run the JSON directory's pass over HTTP too (the other modules would repeat the same HTTP path on the same contract).
It is `slow`: `make test` runs it, the edit-test loop does not."""


@pytest.fixture(scope="module")
def backend() -> str:
    """The store backend of this module's gateways; a module overrides this fixture
    (parametrized over ``BACKENDS``) to run its whole suite on every backend."""
    return "sqlite"


@pytest.fixture(scope="session")
def _shared_gateways() -> Iterator[dict[str, Gateway]]:
    """The default gateway of each backend, started once per test process (xdist worker) and handed from module to
    module by ``gateway``: a start costs ~3.5 CPU-seconds, and 17 modules of ``make test-fast`` use it as it is."""
    started: dict[str, Gateway] = {}
    yield started
    for gw in started.values():
        gw.stop()
        assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


@pytest.fixture(scope="module")
def gateway(
    _shared_gateways: dict[str, Gateway], mock_model: MockModel, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A real gateway with the default settings on the mock model, for the module (and backend). It is shared with
    the process's other modules, each of which finds it as new: its sessions deleted (their Claude Code stopped) and
    its log read from where the module began (``Gateway.log_text``). A module that leaves it stopped gets a new one."""
    gw = _shared_gateways.get(backend)
    if gw is None or gw.process is None:
        gw = _shared_gateways[backend] = Gateway(tmp_path_factory.mktemp("gw"), mock_model.url, backend).start()
    gw.mark_log()
    yield gw
    if gw.process is None:  # the module stopped it for good: the next one starts its own
        assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"
        del _shared_gateways[backend]
        return
    for session_id in gw.session_ids():
        assert gw.client.delete(f"/api/sessions/{session_id}").status_code == 200


@pytest.fixture
def make_gateway(mock_model: MockModel, backend: str, tmp_path: Path) -> Iterator:
    """Factory for gateways with their own settings; all are stopped after the test."""
    started: list[Gateway] = []

    def make(mock: bool = True, **env: str | None) -> Gateway:
        gw = Gateway(tmp_path / f"gw{len(started)}", mock_model.url if mock else None, backend, **env)
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
        assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


@pytest.fixture(scope="module")
def console_gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with a key (``tests.console_page.KEY``) and a webhook secret, for a module of console tests."""
    gw = Gateway(
        tmp_path_factory.mktemp("console"),
        mock_model.url,
        CC_API_KEY=console_page.KEY,
        CC_API_WEBHOOK_SECRET=new_secret(),
    ).start()
    gw.client.headers["authorization"] = f"Bearer {console_page.KEY}"
    yield gw
    gw.stop()
    assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    """Headless Chromium (Debian's, installed when missing), one per module."""
    binary, why_not = browser.find_or_install()
    if binary is None:
        pytest.skip(why_not)
    page = browser.Browser(binary)
    yield page
    page.stop()


@pytest.fixture
def offline_process(mock_model: MockModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """This process as a gateway would run: Claude Code inherits its environment."""
    environment = offline_environment(tmp_path, mock_model.url)
    for name in list(os.environ):
        if name not in environment:
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "user").mkdir()
    yield Settings.from_env().with_overrides(port=free_port())
    gc.unfreeze()  # the app froze the heap at start-up, as a gateway process does
