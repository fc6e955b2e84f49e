"""The default of every setting more than one part of the project reads, defined once.

The services (`settings.py`), the local launcher (`stack/`, standard library only) and
the benchmarks all take their defaults from here, so this module imports nothing but
the standard library, and `services/shared/__init__.py` imports nothing at all.
Defaults serve a developer's machine: everything on loopback, PostgreSQL and Redis
on their standard ports.
"""

from __future__ import annotations

LOCAL_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379

DATABASE_URL = f"postgresql://postgres@{LOCAL_HOST}:{POSTGRES_PORT}/chat"
REDIS_URL = f"redis://{LOCAL_HOST}:{REDIS_PORT}/0"

API_PORT = 8001
REALTIME_PORT = 8101  # a gateway's PORT
REALTIME_PORTS = (REALTIME_PORT, REALTIME_PORT + 1)  # the gateways `make run` starts
LB_PORT = 8080

# Every Redis key and channel the services share starts with it (redis_contract.py).
REDIS_KEY_PREFIX = "chat-socketio"
# Where a service keeps the JWT secret it creates when JWT_SECRET is unset.
JWT_SECRET_FILE = ".run/jwt-secret"  # relative to the working directory
