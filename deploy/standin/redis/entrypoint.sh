#!/bin/sh
# Like the official image: without a config file, other containers may connect
# (protected mode off), since the network, not Redis, is the boundary.
set -eu
if [ "${1:-}" = redis-server ]; then
    case "${2:-}" in
        *.conf) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi
exec "$@"
