#!/usr/bin/env bash
# Create .venv (once) and install opskit with its three plugins in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check \
  -e ".[test,web]" -e plugins/opskit_generic -e plugins/opskit_mdf -e plugins/opskit_seriousletter
