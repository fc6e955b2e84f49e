#!/usr/bin/env bash
# Make a fresh Debian/Ubuntu machine (or CI runner) able to run `make run` and `make test`.
#
#   scripts/bootstrap.sh                 system packages, PostgreSQL/Redis, npm, then .venv
#   scripts/bootstrap.sh --python-only   .venv only (`make test-unit`: no apt, no servers)
#
# The machine's side (apt-get as root for what is missing, starting the local PostgreSQL
# and Redis, pg_hba.conf on a fresh PostgreSQL, npm packages: the pages' socket.io-client and swagger-ui-dist, the JS test client) is `python3 -m stack
# install`, the same code the launcher and the tests use (stack/infra.py, stdlib only).
# This script keeps what must happen around it in the shell: creating .venv and
# installing the project with its test extras into it (pip runs again only when
# pyproject.toml changed). Idempotent, so `make test` calls it every time at almost no
# cost. With WITH_BROWSER=1 (what `make test` sets) it also installs Chromium.
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.installed-stamp"

say() { printf '[bootstrap] %s\n' "$*"; }

if [ "${1:-}" != --python-only ]; then
    browser=()
    [ "${WITH_BROWSER:-0}" = 1 ] && browser=(--browser)
    "$PYTHON" -m stack install "${browser[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
        say "$PYTHON cannot create a venv: install python3-venv (or run scripts/bootstrap.sh as root)"
        exit 1
    fi
    say "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing the project and test dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[test]'
    touch "$STAMP"
fi

say "ready"
