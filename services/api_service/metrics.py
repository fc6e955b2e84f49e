"""The API's own Prometheus series (HTTP latency is in services/shared/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RATE_LIMITED = Counter(
    "chat_rate_limited_requests_total", "Requests refused with 429, by limit.", ["limit"]
)
RATE_LIMIT_FALLBACK = Counter(
    "chat_rate_limit_fallback_total",
    "Rate-limit checks counted in this process's memory because Redis was unreachable.",
)
RATE_LIMIT_IN_MEMORY = Gauge(
    "chat_rate_limit_in_memory", "1 while Redis is unreachable and limits are counted per process."
)
PASSWORD_HASHES_PENDING = Gauge(
    "chat_password_hashes_pending", "Password hashes running or waiting for a worker thread."
)
PASSWORD_HASHES_REFUSED = Counter(
    "chat_password_hashes_refused_total",
    "Sign-ups and sign-ins refused with 503: the hashing queue was full.",
)
BULKHEAD_REFUSED = Counter(
    "chat_bulkhead_refused_total",
    "Requests refused with 503: too many of their kind at once, by kind.",
    ["kind"],
)
PUBLISHED = Counter("chat_relay_published_total", "Messages the outbox relay published to Redis.")
PUBLISH_LAG = Histogram(
    "chat_relay_publish_lag_seconds",
    "Time from a message's commit to its publish on Redis.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RELAY_HOLE_WAITS = Counter(
    "chat_relay_hole_waits_total",
    "Times the outbox relay found an id missing below a committed one and waited for the "
    "transactions that could still commit it (writes to different rooms commit out of order).",
)
RELAY_FAILURES = Counter(
    "chat_relay_failures_total", "Relay rounds interrupted by a Redis or PostgreSQL failure."
)
READ_NOTICES_DROPPED = Counter(
    "chat_read_notices_dropped_total",
    "Moved read markers not announced to the gateways because Redis was unreachable "
    "(the markers are in PostgreSQL).",
)
