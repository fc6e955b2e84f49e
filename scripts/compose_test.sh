#!/usr/bin/env bash
# `make compose-test`: the compose stack built, started with three gateway replicas, and
# tested through its public entry point, then removed (`down -v`), also on failure.
#
#   preflight  a Docker engine: installs docker.io/docker-compose/debootstrap as root when
#              missing, starts dockerd when none answers; skips, saying why, when neither
#              is possible (not root, no cgroups, ...). It never passes without running.
#   images     official images when the engine has them, else the Debian stand-ins
#              (scripts/standin_images.sh); the wheelhouse and socket.io-client on the
#              host (scripts/offline_inputs.sh); the app image, cached by layer.
#   up         docker-compose up -d --scale realtime=3; waits on every healthcheck and on
#              the load balancer serving the API and every replica.
#   tests      tests/integration against CHAT_BASE_URL (the React-client handshake and
#              the official client through the LB, the REST and Socket.IO contract), and
#              tests/integration/test_compose.py's live checks: fan-out to all replicas,
#              no loss through a gateway crash and a Redis restart.
#   down       docker-compose down -v (trap: always).
#
# Variables: COMPOSE_IMAGES=auto|official|standin, PYTEST_ARGS, PY (python with the test
# dependencies), COMPOSE (docker-compose, or "docker compose").
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
COMPOSE="${COMPOSE:-docker-compose}"
IMAGES="${COMPOSE_IMAGES:-auto}"
PROJECT="chattest$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
LOG_DIR="test-artifacts/compose-$PROJECT"
SCALE=3
T0=$SECONDS
PHASE_START=$SECONDS
PHASES=()

say() { echo "compose-test: $*"; }
phase() {  # close the running phase, record its time, open the next
    PHASES+=("$1 $((SECONDS - PHASE_START))s")
    say "phase $1 done in $((SECONDS - PHASE_START))s"
    PHASE_START=$SECONDS
}
skip() {
    echo "compose-test: SKIPPED: $*" >&2
    echo "compose-test: SKIPPED: the compose stack was NOT tested on this machine" >&2
    exit 0
}

# ---- preflight ----------------------------------------------------------------------------
engine_up() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null || ! command -v "${COMPOSE%% *}" >/dev/null \
    || ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        command -v docker >/dev/null && command -v "${COMPOSE%% *}" >/dev/null \
            || skip "docker/docker-compose are not installed and this user cannot install them (not root)"
    else
        say "installing docker.io docker-compose debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            docker.io docker-compose debootstrap >/dev/null
    fi
fi
if ! engine_up; then
    [ "$(id -u)" = 0 ] || skip "no Docker engine answers and this user cannot start dockerd (not root)"
    command -v dockerd >/dev/null || skip "dockerd is not installed"
    [ -d /sys/fs/cgroup ] && [ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] \
        || skip "no cgroup filesystem: dockerd cannot run containers here"
    mkdir -p /var/log
    say "starting dockerd (log /var/log/dockerd.log)"
    nohup dockerd >>/var/log/dockerd.log 2>&1 &
    echo $! > /var/run/dockerd.pid
    for _ in $(seq 60); do engine_up && break; sleep 0.5; done
    engine_up || skip "dockerd did not start: $(tail -n 3 /var/log/dockerd.log | tr '\n' ' ')"
fi
phase preflight

# ---- images -------------------------------------------------------------------------------
official=(postgres:15-alpine redis:7-alpine haproxy:2.6-alpine python:3.11-slim node:20-slim)
have_official=1
for image in "${official[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || have_official=0
done
if [ "$IMAGES" = standin ] || { [ "$IMAGES" = auto ] && [ $have_official = 0 ]; }; then
    say "using the Debian stand-in images (no official images in the engine)"
    standins="$(scripts/standin_images.sh)"
    set -a
    eval "$standins"
    set +a
fi
PYTHON="$PY" scripts/offline_inputs.sh
# One tag per checkout: a run from another worktree never swaps the image under this one.
CHAT_IMAGE="chat-backend:test-$(pwd | sha256sum | cut -c1-10)"
export CHAT_IMAGE
# Can this engine run a container at all? (cgroups, seccomp, user namespaces...)
probe="${PYTHON_IMAGE:-python:3.11-slim}"
if docker image inspect "$probe" >/dev/null 2>&1 \
    && ! err="$(docker run --rm --network none "$probe" true 2>&1)"; then
    skip "the engine cannot run containers here: $err"
fi

# A subnet no other network of this engine uses, so parallel runs never collide.
used="$(docker network inspect $(docker network ls -q) -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true)"
for _ in $(seq 50); do
    octet=$((32 + RANDOM % 200))
    case " $used " in *" 172.30.$octet.0/24 "*) continue ;; esac
    break
done
export CHAT_SUBNET="172.30.$octet.0/24" LB_ADDRESS="172.30.$octet.10"
LB_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export LB_PORT
# The suite signs up hundreds of users from one address and posts fast (see
# tests/integration/conftest.py); the per-user message limit stays on and is tested.
export RATE_LIMIT_AUTH_PER_MINUTE=0 RATE_LIMIT_MESSAGES_PER_MINUTE=300
if grep -rqs JWT_SECRET_FILE services/shared; then
    unset JWT_SECRET  # the no-configuration path: the services generate the secret file
else
    JWT_SECRET="compose-test-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    export JWT_SECRET
fi

compose() { $COMPOSE -p "$PROJECT" -f docker-compose.yml "$@"; }
mkdir -p "$LOG_DIR"
cleanup() {
    code=$?
    set +e
    compose logs --no-color >"$LOG_DIR/compose.log" 2>&1
    PHASE_START=$SECONDS
    compose down -v --remove-orphans >"$LOG_DIR/down.log" 2>&1 \
        || say "docker-compose down -v failed: see $LOG_DIR/down.log"
    phase down
    say "phase times: ${PHASES[*]}; total $((SECONDS - T0))s; container logs: $LOG_DIR/compose.log"
    exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

compose build api >"$LOG_DIR/build.log" 2>&1 || { tail -n 30 "$LOG_DIR/build.log"; exit 1; }
phase images

# ---- up -----------------------------------------------------------------------------------
compose up -d --no-build --scale "realtime=$SCALE" >"$LOG_DIR/up.log" 2>&1 \
    || { cat "$LOG_DIR/up.log"; exit 1; }
ids() { compose ps -q "$@"; }
deadline=$((SECONDS + 180))
while :; do
    unhealthy=""
    for id in $(ids); do
        health="$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")"
        case "$health" in running/healthy | running/none) ;; *) unhealthy+=" $(docker inspect -f '{{.Name}}' "$id")=$health" ;; esac
    done
    [ "$(ids realtime | wc -l)" = "$SCALE" ] && [ -z "$unhealthy" ] && break
    [ $SECONDS -lt $deadline ] || { say "not healthy after 180s:$unhealthy"; exit 1; }
    sleep 1
done
base="http://127.0.0.1:$LB_PORT"
gateways=""
for id in $(ids realtime); do
    gateways+="http://$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id"):8000,"
done
# The LB serves the API and has found every replica through Docker's DNS.
until curl -fsS "$base/healthz" >/dev/null 2>&1 \
    && [ "$(compose logs lb 2>/dev/null | grep -o 'realtime/rt[0-9]* .* is UP' | cut -d' ' -f1 | sort -u | wc -l)" -ge "$SCALE" ]; do
    [ $SECONDS -lt $deadline ] || { say "the load balancer does not serve $base"; exit 1; }
    sleep 1
done
if [ -z "${JWT_SECRET:-}" ]; then
    CHAT_JWT_SECRET="$(compose exec -T api cat /var/lib/chat/jwt-secret)"
else
    CHAT_JWT_SECRET="$JWT_SECRET"
fi
phase up

# ---- tests --------------------------------------------------------------------------------
say "testing $base (gateways ${gateways%,})"
CHAT_BASE_URL="$base" CHAT_GATEWAY_URLS="${gateways%,}" CHAT_JWT_SECRET="$CHAT_JWT_SECRET" \
CHAT_COMPOSE_PROJECT="$PROJECT" CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE="$RATE_LIMIT_MESSAGES_PER_MINUTE" \
    "$PY" -m pytest tests/integration -p no:cacheprovider -rsP ${PYTEST_ARGS:-}
phase tests
