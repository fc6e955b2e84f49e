"""The gateway's own Prometheus series (HTTP latency is in services/shared/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTED_CLIENTS = Gauge(
    "chat_connected_clients", "Socket.IO clients connected to this replica.", ["replica"]
)
FANOUT_DELIVERIES = Counter(
    "chat_fanout_deliveries_total",
    "Message and room events written to clients of this replica (getAllmessages, message, "
    "roomJoined, ...).",
)
FANOUT_MESSAGES = Counter(
    "chat_fanout_messages_total", "Stream entries (messages, room events) this replica fanned out."
)
REFUSED_CONNECTIONS = Counter(
    "chat_refused_connections_total", "Connections refused at the handshake, by reason.", ["reason"]
)
GAP_FILLS = Counter(
    "chat_gap_fills_total", "Delivery gaps filled from the history stream, by outcome.", ["outcome"]
)
RECOVERIES = Counter(
    "chat_recoveries_total", "lastId recoveries, by whether they were complete.", ["recovered"]
)
SLOW_CONSUMER_DISCONNECTS = Counter(
    "chat_slow_consumer_disconnects_total", "Clients disconnected because they could not keep up."
)
REVOKED_DISCONNECTS = Counter(
    "chat_revoked_disconnects_total",
    "Sockets disconnected because their user's access was revoked.",
)
ADMIN_LOGIN_FAILURES = Counter(
    "chat_admin_login_failures_total", "Socket.IO Admin UI sign-ins refused, by why.", ["outcome"]
)
INBOUND_REFUSALS = Counter(
    "chat_inbound_refusals_total",
    "Clients disconnected for what they sent (binary, malformed, rate, too_large, "
    "connect_timeout).",
    ["reason"],
)
SESSIONS_REFUSED = Counter(
    "chat_sessions_refused_total",
    "Engine.IO handshakes refused: the client address holds too many sessions not yet signed in.",
)
LONG_POLLS_WAITING = Gauge(
    "chat_long_polls_waiting", "Long-polling GET requests held open, waiting for a packet to send."
)
ROOMS_AWARE_CONNECTS = Counter(
    "chat_rooms_aware_connects_total",
    "Connections admitted as rooms-aware (auth rooms: true or ?rooms=1).",
)
PRESENCE_CHANGES = Counter(
    "chat_presence_changes_total",
    "Presence changes this replica received from the presence channel, by the new state.",
    ["online"],
)
TYPING_EVENTS = Counter(
    "chat_typing_events_total",
    "`typing` events clients sent to this replica, by outcome (relayed, rate_limited: "
    "more than one per connection, room and second, not_member, invalid, unavailable).",
    ["outcome"],
)
ROOM_STATE_DELIVERIES = Counter(
    "chat_room_state_deliveries_total",
    "Ephemeral events written to clients of this replica (presence, typing).",
    ["event"],
)
READ_NOTICES = Counter(
    "chat_read_notices_total",
    "Moved read markers received from the reads channel, by whether they were receipts.",
    ["receipt"],
)
RECEIPT_BATCHES = Counter(
    "chat_receipt_batches_total",
    "`receipts` events sent to a room's members here (one per room per batch window).",
)
