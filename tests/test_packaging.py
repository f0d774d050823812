"""The wheel a packager builds carries the service templates, and ``install-service`` finds them there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_build_script_checks_the_wheel_and_templates_load_from_it(tmp_path: Path) -> None:
    dist, site = tmp_path / "dist", tmp_path / "site"
    env = {**os.environ, "PYTHON": sys.executable, "DIST": str(dist), "BUILD_ARGS": "--no-isolation"}
    built = subprocess.run([str(REPO / "packaging" / "build.sh")], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "service templates and entry points present" in built.stdout
    wheel, = dist.glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    probe = ("import ccapi, ccapi.service as s; print(ccapi.__file__); print(s.load_template('linux'), end='')")
    shown = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(site)},
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    location, _, template = shown.partition("\n")
    assert location.startswith(str(site))  # the installed wheel, not this checkout
    assert template == (REPO / "service" / "cc-api.service").read_text()
