"""The gateway's configuration, read once from the environment at start-up."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from services.realtime_service.admin_ui import weak_password_reason
from services.realtime_service.presence import PresenceConfig
from services.shared import defaults
from services.shared.config import CommonSettings, ConfigError, Env, Secret


@dataclass(frozen=True)
class RealtimeSettings:
    """Everything a gateway replica needs; see README for each variable."""

    common: CommonSettings
    replica_name: str
    ping_interval: float
    ping_timeout: float
    max_http_buffer_size: int
    gap_check_seconds: float
    replay_max: int
    max_concurrent_replays: int
    shutdown_grace_seconds: float
    max_connections_per_user: int
    max_queued_packets: int
    connection_lease_seconds: float
    presence: PresenceConfig
    connect_timeout_seconds: float
    max_pending_sessions_per_address: int
    inbound_packets_per_second: float
    inbound_packet_burst: int
    admin_username: str
    admin_password: Secret
    admin_max_failures: int
    admin_lockout_seconds: float
    receipt_batch_seconds: float = 1.0

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_username and self.admin_password.value)

    @classmethod
    def from_env(cls, env: Env | None = None) -> RealtimeSettings:
        env = env or Env()
        common = CommonSettings.from_env(env, default_port=defaults.REALTIME_PORT)
        settings = cls(
            common=common,
            replica_name=env.string("REPLICA_NAME", f"{socket.gethostname()}:{common.port}"),
            ping_interval=env.number("PING_INTERVAL_SECONDS", 25.0),
            ping_timeout=env.number("PING_TIMEOUT_SECONDS", 20.0),
            # Clients only receive; a small inbound limit stops memory abuse by big packets.
            max_http_buffer_size=env.integer("MAX_INBOUND_BYTES", 64 * 1024, minimum=1024),
            gap_check_seconds=env.number("GAP_CHECK_SECONDS", 2.0),
            replay_max=env.integer("REPLAY_MAX_MESSAGES", 1000, minimum=1),
            # lastId recoveries served at once; more wait their turn (held from live messages).
            max_concurrent_replays=env.integer("MAX_CONCURRENT_REPLAYS", 4, minimum=1),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 5.0),
            max_connections_per_user=env.integer("MAX_CONNECTIONS_PER_USER", 20),
            # Per-client backlog before it counts as a slow consumer and is disconnected.
            max_queued_packets=env.integer("MAX_QUEUED_PACKETS_PER_CLIENT", 2000, minimum=1),
            # Every connection's lease (presence is made of them): a replica that dies
            # leaves its users online for at most this long, plus one presence sweep.
            connection_lease_seconds=env.number("CONNECTION_LEASE_SECONDS", 15.0),
            presence=PresenceConfig(
                offline_grace_seconds=env.number("OFFLINE_GRACE_SECONDS", 5.0),
                sweep_seconds=env.number("PRESENCE_SWEEP_SECONDS", 0.1),
                push_max_members=env.integer("PRESENCE_PUSH_MAX_MEMBERS", 100),
                typing_max_members=env.integer("TYPING_MAX_MEMBERS", 1000),
            ),
            # A session that has not connected to a namespace by then is closed.
            connect_timeout_seconds=env.number("CONNECT_TIMEOUT_SECONDS", 5.0),
            max_pending_sessions_per_address=env.integer("MAX_PENDING_SESSIONS_PER_ADDRESS", 50),
            # Inbound packets per connection (token bucket); 0 disables the limit.
            inbound_packets_per_second=env.number("INBOUND_PACKETS_PER_SECOND", 10.0),
            inbound_packet_burst=env.integer("INBOUND_PACKET_BURST", 60, minimum=1),
            # The Socket.IO Admin UI is off unless both are set.
            admin_username=env.string("ADMIN_UI_USERNAME", ""),
            admin_password=Secret(env.string("ADMIN_UI_PASSWORD", "")),
            # Failed Admin UI sign-ins per client address and window before it is refused.
            admin_max_failures=env.integer("ADMIN_UI_MAX_FAILURES", 5, minimum=1),
            admin_lockout_seconds=env.number("ADMIN_UI_LOCKOUT_SECONDS", 300.0),
            # At most one `receipts` event per room per this many seconds (docs/ROOM_STATE.md).
            receipt_batch_seconds=_positive(env, "RECEIPT_BATCH_SECONDS", 1.0),
        )
        settings.check_admin_safety()
        return settings

    def check_admin_safety(self) -> None:
        """In production, refuse to start the Admin UI with a guessable password."""
        if not (self.common.production and self.admin_enabled):
            return
        weak = weak_password_reason(self.admin_password.value)
        if weak:
            raise ConfigError(
                f"APP_ENV=production refuses ADMIN_UI_PASSWORD: {weak} "
                "(needs 16+ characters, 8+ different ones, not a repeated string)"
            )


def _positive(env: Env, name: str, default: float) -> float:
    """A number of seconds that must be above zero."""
    value = env.number(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value}")
    return value
