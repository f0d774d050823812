#!/usr/bin/env bash
# Build the sdist and the wheel into dist/, then check that the wheel carries what an installed
# CC API needs beyond its code: the service templates and both console scripts.
# Usage: packaging/build.sh
#   PYTHON=...           the interpreter (default .venv/bin/python, else python3); needs `build`
#   DIST=...             the output directory (default dist/, emptied first)
#   BUILD_ARGS=...       extra `python -m build` options, e.g. --no-isolation to use the installed
#                        hatchling instead of fetching it (the dev extra installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
DIST="${DIST:-dist}"

rm -rf "$DIST"
# python -m build makes the sdist first and the wheel from it, so a file the sdist forgot
# (service/ in particular) fails here rather than on a user's machine.
# shellcheck disable=SC2086
"$PYTHON" -m build ${BUILD_ARGS:-} --outdir "$DIST" . >/dev/null

"$PYTHON" - "$DIST" <<'CHECK'
import sys, tarfile, zipfile
from pathlib import Path

dist = Path(sys.argv[1])
wheel, = dist.glob("*.whl")
sdist, = dist.glob("*.tar.gz")
names = set(zipfile.ZipFile(wheel).namelist())
problems = [f"wheel lacks {name}" for name in
            ("ccapi/service_templates/cc-api.service", "ccapi/service_templates/com.cc-api.gateway.plist")
            if name not in names]
entry_points, = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
problems += [f"wheel lacks the {line!r} entry point" for line in
             ("cc-api = ccapi.daemon.cli:main", "cc-api-menu = ccapi.daemon.menu:main") if line not in scripts]
root = sdist.name.removesuffix(".tar.gz")
members = set(tarfile.open(sdist).getnames())
problems += [f"sdist lacks {name}" for name in ("service/cc-api.service", "service/com.cc-api.gateway.plist")
             if f"{root}/{name}" not in members]
if problems:
    sys.exit("packaging check failed:\n  " + "\n  ".join(problems))
print(f"built {sdist} and {wheel}: service templates and entry points present")
CHECK
