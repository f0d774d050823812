"""The wheel a packager builds carries the service templates, and ``install-service`` finds them there;
installed into a fresh venv with no extras, as a user installs it, every documented command and
import works."""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from ccapi import __version__
from tests.gateway import Gateway

REPO = Path(__file__).resolve().parent.parent
#: Run in the installed venv: import every public module, one turn through the documented client, then the README's
#: Python example as printed (its output goes to stderr, so stdout stays this probe's JSON).
CLIENT_PROBE = """
import contextlib, importlib, json, pkgutil, sys
import ccapi
from ccapi.client import Client

modules = sorted(m.name for m in pkgutil.walk_packages(ccapi.__path__, "ccapi.") if "._" not in m.name)
for name in modules:
    importlib.import_module(name)
with Client(sys.argv[1]) as cc:
    session = cc.create_session()
    turn = cc.send(session.id, "hello from a plain install")
with contextlib.redirect_stdout(sys.stderr):
    exec(sys.argv[2].replace("http://127.0.0.1:8000", sys.argv[1]), {})
print(json.dumps({"file": ccapi.__file__, "modules": modules, "status": turn.status, "text": turn.text}))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``packaging/build.sh`` run once for the module: the checked sdist and wheel."""
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHON": sys.executable, "DIST": str(dist), "BUILD_ARGS": "--no-isolation"}
    built = subprocess.run([str(REPO / "packaging" / "build.sh")], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "service templates and entry points present" in built.stdout
    return dist


@pytest.mark.slow  # builds the sdist and the wheel, then pip-installs the wheel
@pytest.mark.timeout(120)
def test_build_script_checks_the_wheel_and_templates_load_from_it(dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (wheel,) = dist.glob("*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = "import ccapi, ccapi.daemon.service as s; print(ccapi.__file__); print(s.load_template('linux'), end='')"
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    location, _, template = shown.partition("\n")
    assert location.startswith(str(site))  # the installed wheel, not this checkout
    assert template == (REPO / "service" / "cc-api.service").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_plain_install_runs_the_documented_commands(dist: Path, tmp_path: Path) -> None:
    """``pip install cc-api`` with no extras: a runtime dependency missing from ``pyproject.toml``
    (one only the dev extra brings, say) fails here."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (wheel,) = dist.glob("*.whl")
    # This venv's installer installs into the new one (no pip bootstrap there): uv, which `make` sets up and which
    # resolves the wheel's dependencies in a few seconds where pip took ~20, or pip without it. --no-compile only
    # skips writing .pyc files.
    uv = Path(sys.executable).with_name("uv")
    target = ["--python", str(venv / "bin" / "python")]
    installer = (
        [str(uv), "pip", "install", *target] if uv.exists() else [sys.executable, "-m", "pip", *target, "install"]
    )
    installed = subprocess.run(
        [*installer, "--quiet", "--no-compile", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    version = subprocess.run(
        [str(venv / "bin" / "cc-api"), "version", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert version.returncode == 0, version.stderr
    assert orjson.loads(version.stdout)["version"] == __version__

    # As root with IS_SANDBOX=yes, as some shells and containers set it: Claude Code takes only "1", so the default
    # turn must not ask it for bypassPermissions.
    gw = Gateway(
        tmp_path / "home",
        None,
        command=[str(venv / "bin" / "cc-api"), "run", "--mock-model"],
        PYTHONPATH=None,
        IS_SANDBOX="yes",
        CC_API_SANDBOX=None,
    ).start()
    readme = (REPO / "README.md").read_text()
    [example] = re.findall(r"## Python client.*?```python\n(.*?)```", readme, flags=re.S)
    try:
        page = httpx.get(f"{gw.base_url}/", headers={"accept": "text/html"})
        assert "<title>CC API</title>" in page.text  # the console ships in the wheel
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", CLIENT_PROBE, gw.base_url, example],
            cwd=tmp_path,
            env=gw.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr[-3000:] + gw.log_path.read_text()[-3000:]
    finally:
        gw.stop()
    assert gw.lingering_processes() == [], "a process of the installed gateway outlived it"
    shown = orjson.loads(probe.stdout)
    assert shown["file"].startswith(str(venv))  # the installed wheel, not this checkout
    source = sorted(m.name for m in pkgutil.walk_packages([str(REPO / "ccapi")], "ccapi.") if "._" not in m.name)
    assert shown["modules"] == source and "ccapi.client" in source
    assert (shown["status"], shown["text"]) == ("completed", "mock reply: hello from a plain install")
    printed = probe.stderr.splitlines()  # the README example's own lines
    assert printed[0] == "completed mock reply: Weather in Vancouver?", probe.stderr[-2000:]
    assert printed[-1].endswith(" turn.completed"), probe.stderr[-2000:]
