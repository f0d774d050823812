"""A setting the gateway cannot use stops ``cc-api run`` at once: one line that names the variable and what it
accepts, exit code 2 (a setting to fix: a service does not retry it), no traceback, and nothing started (no mock
model, no state file, no log, no port, no Claude Code)."""

from __future__ import annotations

import signal
import stat
import subprocess
from pathlib import Path

import pytest

from ccapi.testing import MockModel
from tests.daemon import CC_API
from tests.gateway import Gateway, free_port, gateway_processes
from tests.gateway import test_environment as offline_environment  # aliased: pytest would collect test_*


def run_refused(tmp_path: Path, **env: str) -> str:
    """``cc-api run --mock-model`` with ``env``: asserts it refused to start as a bad setting should, and returns
    what it printed. A gateway that starts anyway is stopped, and the test fails."""
    (tmp_path / "user").mkdir(parents=True, exist_ok=True)
    environment = {**offline_environment(tmp_path, None), "CC_API_PORT": str(free_port()), **env}
    home = Path(environment["CC_API_HOME"])
    process = subprocess.Popen(
        [*CC_API, "run", "--mock-model"],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        pytest.fail(f"the gateway started with {env}:\n{err}")
    finally:
        assert gateway_processes(str(home), set()) == []
    assert process.returncode == 2, err
    assert out == "" and "Traceback" not in err, out + err
    assert len(err.splitlines()) == 1, err  # one line: not the mock model's banner, not a log line
    assert not (home / "cc-api.json").exists() and not (home / "logs").exists()  # nothing started
    return err


@pytest.mark.parametrize(
    ("name", "value", "told"),
    [
        ("CC_API_REQUEST_TIMEOUT", "nan", "CC_API_REQUEST_TIMEOUT='nan' is not a number: it must be a positive number"),
        ("CC_API_IDLE_TIMEOUT", "inf", "CC_API_IDLE_TIMEOUT='inf' is not a number: it must be a positive number"),
        ("CC_API_COMPAT_RETENTION", "-1", "CC_API_COMPAT_RETENTION=-1 must be a positive number (or 0: off)"),
        ("CC_API_PORT", "70000", "CC_API_PORT=70000 is out of range: it must be an integer from 0 to 65535"),
        ("CC_API_MAX_LIVE", "0", "CC_API_MAX_LIVE=0 is out of range: it must be an integer at least 1"),
        ("CC_API_UPSTREAM_URL", "localhost:9000", "CC_API_UPSTREAM_URL must be an http:// or https:// URL"),
        ("CC_API_MODELS", '[{"id": "claude-x"', "CC_API_MODELS is not valid JSON"),
        ("CC_API_MODEL", "claude-sonet-4-5", "CC_API_MODEL='claude-sonet-4-5' is not a known model"),
        ("CC_API_ALLOWED_HOSTS", "https://gw.example.com", "CC_API_ALLOWED_HOSTS: 'https://gw.example.com' is not a"),
        ("CC_API_SANDBOX_DOMAINS", "https://pypi.org:443", "CC_API_SANDBOX_DOMAINS: 'https://pypi.org:443' is not a"),
        ("CC_API_ALLOWED_HOSTS", "gw.example.com:8443", "CC_API_ALLOWED_HOSTS: 'gw.example.com:8443' is not a"),
        ("CC_API_WEBHOOK_ALLOW", "10.0.0.0/33", "CC_API_WEBHOOK_ALLOW: '10.0.0.0/33' is not a host name or IP network"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_what_it_accepts(
    tmp_path: Path, name: str, value: str, told: str
) -> None:
    """NaN and infinity passed as numbers (a gateway with a NaN request timeout served), a URL without a scheme
    started a gateway whose every turn failed, a bad ``CC_API_MODELS`` was found only once the port was bound and
    the mock model started, "is out of range" did not say which range, an unknown default model started a gateway
    that refused (400) every session naming no model, and a host list entry with a scheme or a port (never matched:
    the ``Host`` header is matched by name) started a gateway that answered 403 to the name it was meant to allow."""
    err = run_refused(tmp_path, **{name: value})
    assert err.startswith(f"cc-api: {told}"), err


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_working_directory_that_is_not_one_is_refused_at_start_up(tmp_path: Path, kind: str) -> None:
    """``CC_API_CWD`` naming no folder started a healthy gateway whose every turn failed with ``engine_error``
    ("Working directory does not exist")."""
    where = tmp_path / "work"
    if kind == "file":
        where.write_text("")
    err = run_refused(tmp_path, CC_API_CWD=str(where))
    assert err.startswith(f"cc-api: CC_API_CWD={str(where)!r} is not a directory"), err


@pytest.mark.parametrize("variable", ["CC_API_HOME", "CC_API_SESSION_DIR"])
def test_a_state_folder_that_holds_the_users_home_is_refused_before_anything_in_it_changes(
    tmp_path: Path, variable: str
) -> None:
    """The gateway makes its state private at start-up, every file and folder under it: ``CC_API_HOME=~`` (or a
    JSON-directory store there) took group and other permissions off the user's whole home folder."""
    user = tmp_path / "user"
    shared = user / "www" / "index.html"
    shared.parent.mkdir(parents=True)
    shared.write_text("hello")
    shared.chmod(0o644)
    shared.parent.chmod(0o755)
    err = run_refused(tmp_path, **{variable: str(user)})
    assert err.startswith(f"cc-api: {variable}={str(user)!r} holds your home folder"), err
    assert (stat.S_IMODE(shared.stat().st_mode), stat.S_IMODE(shared.parent.stat().st_mode)) == (0o644, 0o755)


@pytest.mark.parametrize("where", ["root", "state"])
def test_a_working_directory_where_bash_could_write_the_state_is_refused(tmp_path: Path, where: str) -> None:
    """A session's own ``cwd`` of ``/`` or in the gateway's state is a 400 (the sandbox lets Bash write where a
    session works); ``CC_API_CWD``, every other session's, was taken as it was."""
    place = Path("/") if where == "root" else tmp_path / "cc-api" / "work"
    place.mkdir(parents=True, exist_ok=True)
    err = run_refused(tmp_path, CC_API_CWD=str(place))
    assert err.startswith(f"cc-api: CC_API_CWD={str(place)!r} is the file system's root or in the gateway's state")


def test_a_json_directory_that_is_a_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    """It was a ``cannot_open_store`` log line ("File exists") after the port was bound and the mock started."""
    (tmp_path / "store").write_text("")
    err = run_refused(tmp_path, CC_API_SESSION_DIR=str(tmp_path / "store"))
    assert err.startswith(f"cc-api: CC_API_SESSION_DIR={str(tmp_path / 'store')!r} is not a directory"), err


def test_a_database_path_that_is_a_folder_is_refused_before_anything_in_it_changes(tmp_path: Path) -> None:
    """``CC_API_SESSION_DB`` naming a folder (a project, the user's home) by mistake: the start-up made everything
    under it private (0644 files became 0600, recursively) before the store failed to open there."""
    folder = tmp_path / "project"
    (folder / "docs").mkdir(parents=True)
    shared = folder / "docs" / "README.md"
    shared.write_text("read me")
    shared.chmod(0o644)
    folder.chmod(0o755)
    err = run_refused(tmp_path, CC_API_SESSION_DB=str(folder))
    assert err.startswith(f"cc-api: CC_API_SESSION_DB={str(folder)!r} is a directory"), err
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_the_forms_the_checks_accept_start_a_gateway_that_serves_them(mock_model: MockModel, tmp_path: Path) -> None:
    """What the checks above must not refuse: a default model added by ``CC_API_MODELS``, host names, subdomains,
    IP literals and networks; the gateway then uses them (no Claude Code is started)."""
    gateway = Gateway(
        tmp_path,
        mock_model.url,
        CC_API_MODEL="claude-house-1",
        CC_API_MODELS="claude-house-1",
        CC_API_ALLOWED_HOSTS="gw.example.invalid, .corp.example,::1",
        CC_API_WEBHOOK_ALLOW="localhost,10.0.0.0/8,[::1],.hooks.example",
        CC_API_CWD=str(tmp_path),
        CC_API_IDLE_TIMEOUT="0.5",
    ).start()
    try:
        assert gateway.create_session()["model"] == "claude-house-1"
        for host in ("gw.example.invalid", "a.corp.example"):
            assert gateway.client.get("/api/sessions", headers={"host": host}).status_code == 200, host
        assert gateway.client.get("/api/sessions", headers={"host": "other.example"}).status_code == 403
    finally:
        gateway.stop()
    assert gateway.lingering_processes() == []


def test_a_log_folder_that_cannot_be_made_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """``$CC_API_HOME/logs`` a file (or the home on a read-only disk) was a ``FileExistsError`` traceback."""
    environment = {**offline_environment(tmp_path, None), "CC_API_PORT": str(free_port())}
    home = Path(environment["CC_API_HOME"])
    home.mkdir(parents=True)
    (home / "logs").write_text("")
    finished = subprocess.run(
        [*CC_API, "run", "--mock-model"], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 2 and "Traceback" not in finished.stderr, finished.stderr
    assert finished.stderr.startswith(f"cc-api: cannot write the log in {home / 'logs'}"), finished.stderr
