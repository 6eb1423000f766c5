#!/usr/bin/env bash
# Idempotent setup of everything contimg needs on a Debian machine:
#   1. Debian packages: wsclean, rclone, aoflagger, postgresql (the Postgres test's throwaway
#      cluster), chromium (the browser tests) and redis-server (the Celery broker of the
#      multi-node layout and its test), only when missing;
#   2. a virtual environment at .venv with the project installed in editable mode
#      (re-installed only when pyproject.toml changes);
#   3. CASA configured to run offline from the casadata package, writing nothing
#      into the user's home (a casasiteconfig.py inside the venv).
# A second run finds everything in place and returns in a few seconds.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
say() { printf '[setup] %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------
need=()
for pkg in wsclean rclone aoflagger postgresql chromium redis-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  say "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo_cmd apt-get install -y --no-install-recommends "${need[@]}" >/tmp/contimg-apt.log 2>&1; then
    $sudo_cmd apt-get update >>/tmp/contimg-apt.log 2>&1
    $sudo_cmd apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/contimg-apt.log 2>&1 \
      || { say "apt-get failed; see /tmp/contimg-apt.log"; exit 1; }
  fi
else
  say "Debian packages present (wsclean, rclone, aoflagger, postgresql, chromium, redis-server)"
fi

# --- 2. virtual environment ---------------------------------------------------
python_bin="${CONTIMG_PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=".venv/.contimg-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing the project and its dependencies into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1
  .venv/bin/python -m pip install -q -e ".[test]" >.venv/pip-install.log 2>&1 \
    || { tail -n 30 .venv/pip-install.log; say "pip install failed; full log in .venv/pip-install.log"; exit 1; }
  echo "$want" >"$stamp"
else
  say ".venv up to date"
fi

# --- 3. CASA offline ------------------------------------------------------------
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
tmp_cfg="$(mktemp)"
cat >"$tmp_cfg" <<PY
# Written by contimg's scripts/setup.sh: CASA runs offline from the casadata
# package, never auto-updates, and writes nothing into the user's home.
import os as _os

import casadata as _casadata

measurespath = _casadata.datapath
datapath = [_casadata.datapath]
measures_auto_update = False
data_auto_update = False
_state = _os.environ.get("CONTIMG_CASA_DIR", "$repo/var/data/logs/casa")
_os.makedirs(_state, exist_ok=True)
_os.environ.setdefault("MPLCONFIGDIR", _os.path.join(_state, "matplotlib"))
cachedir = _state
startupfile = _os.path.join(_state, "startup.py")
logfile = _os.environ.get("CONTIMG_CASA_LOGFILE", _os.path.join(_state, "casa.log"))
nologger = True
log2term = False
nogui = True
PY
if ! cmp -s "$tmp_cfg" "$site/casasiteconfig.py"; then
  say "writing $site/casasiteconfig.py (CASA offline)"
  cp "$tmp_cfg" "$site/casasiteconfig.py"
fi
rm -f "$tmp_cfg"
say "ready: $repo/.venv"
