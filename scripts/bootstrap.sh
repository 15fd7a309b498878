#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine, idempotently:
#   - Debian packages: clang-14 (to build the Solana program from source), nodejs/npm, and
#     gcc with the Python headers (to build the router's bound pass, a C extension);
#   - npm tools pinned in package-lock.json (solc-js, anvil) into ./node_modules;
#   - a Python 3.11 venv in ./.venv with the hub, the three backends and the example apps
#     (as plugins, installed exactly like third-party ones) and the dev tools, pinned by
#     constraints.txt.
# Re-running it is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMPS="$ROOT/.venv/.stamps"

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

need_apt=()
command -v clang-14 >/dev/null 2>&1 || need_apt+=(clang-14)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && \
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "Python 3.11 is required (py-bitcoinkernel ships cp311 wheels)" >&2; exit 1; }

# A C compiler and the Python headers build the router's bound pass (a C extension).
need_build=()
command -v gcc >/dev/null 2>&1 || need_build+=(gcc)
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(
  os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || need_build+=(python3.11-dev)
if [ ${#need_build[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_build[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_build[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
mkdir -p "$STAMPS"

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
digest() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# The router's compiled bound pass is built by the install below (pyproject's ext-modules):
# its C source is an input, and a missing build (a cleaned tree) reinstalls too.
py_inputs=(pyproject.toml backends/*/pyproject.toml apps/*/pyproject.toml constraints.txt
  chenilles_hub/core/routing/_bounds.c)
py_digest=$(digest "${py_inputs[@]}")
kernel_built() { .venv/bin/python -c 'import chenilles_hub.core.routing._bounds' 2>/dev/null; }
if ! stamp_ok python "$py_digest" || ! kernel_built; then
  say "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" 2>&1 \
    | grep -v '^WARNING: Location' || true
  # -qq: quiet unless something fails (setuptools' informational warnings are not ours).
  .venv/bin/python -m pip install -qq --disable-pip-version-check -c constraints.txt \
    -e ".[dev]" -e backends/evm -e backends/bitcoin -e backends/solana \
    -e apps/tictactoe -e apps/escrow -e apps/virtual 2>&1 \
    | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import chenilles_hub, chenilles_evm, chenilles_bitcoin, chenilles_solana'
  kernel_built || { echo "the router's C extension (chenilles_hub/core/routing/_bounds.c)" \
    "did not build: it needs gcc and the headers of $PYTHON (Python.h)" >&2; exit 1; }
  .venv/bin/python -c 'import chenilles_app_tictactoe, chenilles_app_escrow, chenilles_app_virtual'
  echo "$py_digest" > "$STAMPS/python"
fi

if [ -f package-lock.json ]; then
  npm_digest=$(digest package.json package-lock.json)
  if ! stamp_ok npm "$npm_digest" || [ ! -d node_modules ]; then
    # `npm ci` installs exactly what the lock lists (every platform's anvil build is listed;
    # only this platform's is fetched) and never rewrites the tracked lock file.
    say "installing npm tools (npm ci from package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$npm_digest" > "$STAMPS/npm"
  fi
fi
say "ready"
