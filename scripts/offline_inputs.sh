#!/usr/bin/env bash
# Fills deploy/offline/ (see its README) on the host, so `docker build` needs neither the
# Python package index nor the npm registry: the wheels of every dependency in
# pyproject.toml, and the pages' npm packages (socket.io-client, swagger-ui-dist) from web/package-lock.json.
# Cached: the wheelhouse is rebuilt only when the dependency list changes.
#   PIP=/path/to/pip  (default: .venv/bin/pip, else pip3)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=deploy/offline
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
log() { echo "offline: $*" >&2; }

mkdir -p "$OUT/wheels" "$OUT/web"

requirements="$("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')"
stamp="$(printf '%s\n' "$requirements" | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/wheels/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building the wheelhouse ($OUT/wheels)"
    rm -f "$OUT/wheels/"*.whl "$OUT/wheels/.stamp"
    printf '%s\n' "$requirements" > "$OUT/wheels/requirements.txt"
    "$PY" -m pip wheel --quiet --wheel-dir "$OUT/wheels" -r "$OUT/wheels/requirements.txt" >&2
    # Markers were resolved for this interpreter; Debian's Python 3.11 is an earlier patch
    # release (see scripts/wheelhouse_extras.py): add what it needs on top.
    extras="$("$PY" scripts/wheelhouse_extras.py "$OUT/wheels" 3.11.0)"
    if [ -n "$extras" ]; then
        log "adding for early 3.11: $(echo $extras)"
        printf '%s\n' "$extras" > "$OUT/wheels/early-3.11.txt"
        "$PY" -m pip wheel --quiet --wheel-dir "$OUT/wheels" -r "$OUT/wheels/early-3.11.txt" >&2
    fi
    echo "$stamp" > "$OUT/wheels/.stamp"
fi

lock_stamp="$(sha256sum web/package-lock.json | cut -c1-16)"
if [ "$(cat "$OUT/web/.stamp" 2>/dev/null)" != "$lock_stamp" ]; then
    log "installing the pages' npm packages ($OUT/web/node_modules)"
    rm -rf "$OUT/web/node_modules" "$OUT/web/.stamp"
    cp web/package.json web/package-lock.json "$OUT/web/"
    (cd "$OUT/web" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
    echo "$lock_stamp" > "$OUT/web/.stamp"
fi
