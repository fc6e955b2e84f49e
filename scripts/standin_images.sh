#!/usr/bin/env bash
# Stand-in base images for a Docker engine without a registry, made from Debian packages
# only: a minimal Debian root (debootstrap, then `docker import`) and on it PostgreSQL 15,
# Redis 7, HAProxy 2.6 and Python 3.11 with the ports, environment and entry points that
# docker-compose.yml and the Dockerfile use from the official images.
#
# Each image is tagged with a hash of its recipe (deploy/standin/<name>/), so it is built
# once and rebuilt only when the recipe changes. Prints the variables docker-compose.yml
# and the Dockerfile read, one NAME=image per line, e.g. for `eval`/`export`:
#
#   eval "$(scripts/standin_images.sh)" && export POSTGRES_IMAGE REDIS_IMAGE HAPROXY_IMAGE PYTHON_IMAGE NODE_IMAGE
#
# Needs root (debootstrap) the first time; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${STANDIN_SUITE:-bookworm}"
MIRROR="${STANDIN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="chat-standin/debian:${SUITE}"
RECIPES=deploy/standin

log() { echo "standin: $*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    if have_image "$BASE_IMAGE"; then
        return
    fi
    command -v debootstrap >/dev/null || {
        log "debootstrap is missing: apt-get install -y debootstrap (as root)"
        exit 1
    }
    local root
    root="$(mktemp -d /tmp/standin-rootfs.XXXXXX)"
    trap 'rm -rf "$root"' RETURN
    log "debootstrap $SUITE (minbase) from $MIRROR"
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >&2
    # What a container never needs: downloaded packages, docs, man pages.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/*
    # Image layers should not keep apt's downloads either (as the official images do).
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        > "$root/etc/apt/apt.conf.d/90container"
    printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n' \
        > "$root/etc/apt/apt.conf.d/91clean"
    log "docker import -> $BASE_IMAGE"
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV DEBIAN_FRONTEND=noninteractive' \
        -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
}

# name of the recipe -> tag of the image it makes, cached by the recipe's content hash.
build_standin() {
    local name="$1" hash tag
    hash="$( (docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; \
              cd "$RECIPES/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
            | sha256sum | cut -c1-12)"
    tag="chat-standin/$name:$hash"
    if ! have_image "$tag"; then
        log "building $tag"
        DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" \
            -t "$tag" "$RECIPES/$name" >&2
    fi
    echo "$tag"
}

build_base
python="$(build_standin python)"
echo "POSTGRES_IMAGE=$(build_standin postgres)"
echo "REDIS_IMAGE=$(build_standin redis)"
echo "HAPROXY_IMAGE=$(build_standin haproxy)"
echo "PYTHON_IMAGE=$python"
# The web stage only copies the npm packages prepared on the host (see the Dockerfile):
# any image with a shell will do.
echo "NODE_IMAGE=$python"
