#!/usr/bin/env bash
# Make a fresh Debian/Ubuntu machine (or CI runner) able to run `make run` and `make test`.
#
# Idempotent: every step checks first and does nothing when already done, so `make test`
# can call it every time at almost no cost.
#   1. system packages: haproxy, docker-compose, postgresql, redis-server, nodejs, npm
#      (apt-get, only as root and only for what is missing)
#   2. local PostgreSQL and Redis running (only for the local default addresses)
#   3. .venv with the project and its test extras (pip runs again only when
#      pyproject.toml changed)
#   4. the npm packages: the chat page's socket.io-client (web/) and the JS test
#      client (tests/js)
# With WITH_BROWSER=1 (what `make test` sets) it also installs Debian's chromium for the
# browser tests.
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.installed-stamp"

say() { printf '[bootstrap] %s\n' "$*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# ---- 1. system packages ------------------------------------------------------------
# "command package" pairs: the command proves the package is there.
REQUIRED=(
    "haproxy haproxy"
    "docker-compose docker-compose"
    "pg_ctlcluster postgresql"
    "psql postgresql-client"
    "redis-server redis-server"
    "redis-cli redis-tools"
    "node nodejs"
    "npm npm"
)
if [ "${WITH_BROWSER:-0}" = 1 ]; then
    REQUIRED+=("chromium chromium")
fi
missing=()
for pair in "${REQUIRED[@]}"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# Debian ships venv's pip bootstrap separately.
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

fresh_postgres=no
if [ "${#missing[@]}" -gt 0 ]; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
        [[ " ${missing[*]} " == *" postgresql "* ]] && fresh_postgres=yes
        say "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        say "please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})"
        say "continuing with what is present"
    fi
fi

# A freshly installed Debian PostgreSQL wants a password over TCP; the project's default
# DATABASE_URL (services/shared/defaults.py) has none. Trust loopback logins
# on such a development/CI machine, and only when we installed it just now.
if [ "$fresh_postgres" = yes ]; then
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i \
            '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    done
fi

# ---- 2. PostgreSQL and Redis --------------------------------------------------------
# Only the local defaults are started here; a DATABASE_URL/REDIS_URL pointing elsewhere
# is somebody else's server and stack/infra.py just checks it is reachable.
if [ -z "${DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1; then
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        :
    elif is_root && command -v pg_ctlcluster >/dev/null 2>&1; then
        version=$(ls /etc/postgresql | sort -V | tail -n1)
        say "starting PostgreSQL $version"
        if [ "$fresh_postgres" = yes ]; then
            # apt may already have started it with the old pg_hba.conf: restart to apply.
            pg_ctlcluster --skip-systemctl-redirect "$version" main stop 2>/dev/null || true
        fi
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    else
        say "PostgreSQL is not running on 127.0.0.1:5432: please start it"
    fi
fi

if [ -z "${REDIS_URL:-}" ] && command -v redis-cli >/dev/null 2>&1; then
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        :
    elif is_root && command -v redis-server >/dev/null 2>&1; then
        say "starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        # No persistence: it only carries pub/sub and short-lived buffers here.
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        for _ in $(seq 1 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.5; done
    else
        say "Redis is not running on 127.0.0.1:6379: please start it"
    fi
fi

# ---- 3. Python virtualenv ------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing the project and test dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[test]'
    touch "$STAMP"
fi

# ---- 4. npm packages -----------------------------------------------------------------
npm_ci() {
    local dir=$1
    [ -f "$dir/package-lock.json" ] && command -v npm >/dev/null 2>&1 || return 0
    if [ ! -d "$dir/node_modules" ] \
        || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        say "installing npm packages in $dir"
        npm ci --prefix "$dir" --no-audit --no-fund --silent
    fi
}
npm_ci web
npm_ci tests/js

say "ready"
