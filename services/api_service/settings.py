"""The API's configuration, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.api_service.webpage import DEFAULT_WEB_ROOT
from services.shared import defaults
from services.shared.config import CommonSettings, ConfigError, Env, Secret


@dataclass(frozen=True)
class RoomLimits:
    """The limits of rooms and direct messages (docs/ROOMS.md, "Limits")."""

    max_rooms_per_user: int
    max_members_per_room: int
    name_max_chars: int
    topic_max_chars: int
    rooms_created_per_minute: int
    invites_per_minute: int
    room_posts_per_minute: int
    user_search_per_minute: int
    room_reads_per_minute: int
    # Edits, deletions and reactions (docs/ROOM_STATE.md).
    message_changes_per_minute: int
    max_reactions_per_message: int
    read_markers_per_minute: int

    @classmethod
    def from_env(cls, env: Env) -> RoomLimits:
        return cls(
            max_rooms_per_user=env.integer("MAX_ROOMS_PER_USER", 1000, minimum=1),
            max_members_per_room=env.integer("MAX_MEMBERS_PER_ROOM", 50_000, minimum=2),
            name_max_chars=env.integer("ROOM_NAME_MAX_CHARS", 80, minimum=1, maximum=1000),
            topic_max_chars=env.integer("ROOM_TOPIC_MAX_CHARS", 250, minimum=1, maximum=10_000),
            rooms_created_per_minute=env.integer("RATE_LIMIT_ROOMS_CREATED_PER_MINUTE", 10),
            invites_per_minute=env.integer("RATE_LIMIT_INVITES_PER_MINUTE", 60),
            room_posts_per_minute=env.integer("RATE_LIMIT_ROOM_POSTS_PER_MINUTE", 60),
            user_search_per_minute=env.integer("RATE_LIMIT_USER_SEARCH_PER_MINUTE", 30),
            room_reads_per_minute=env.integer("RATE_LIMIT_ROOM_READS_PER_MINUTE", 600),
            message_changes_per_minute=env.integer("RATE_LIMIT_MESSAGE_CHANGES_PER_MINUTE", 120),
            max_reactions_per_message=env.integer("MAX_REACTIONS_PER_MESSAGE", 20, minimum=1),
            read_markers_per_minute=env.integer("RATE_LIMIT_READ_MARKERS_PER_MINUTE", 300),
        )


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API needs; see README for each variable."""

    common: CommonSettings
    database_url: Secret
    jwt_ttl_seconds: int
    max_body_bytes: int
    request_body_timeout_seconds: float
    message_max_chars: int
    history_default_limit: int
    history_max_limit: int
    db_pool_min: int
    db_pool_max: int
    migrate_on_start: bool
    stream_max_len: int
    stream_max_age_seconds: int
    relay_poll_seconds: float
    relay_linger_seconds: float
    failpoint: str
    messages_per_minute: int
    auth_per_minute: int
    history_rows_per_minute: int
    history_max_concurrent_reads: int
    history_max_waiting_reads: int
    password_hash_workers: int
    password_hash_max_pending: int
    rate_limit_redis_timeout_seconds: float
    rate_limit_redis_retry_seconds: float
    web_root: Path
    rooms: RoomLimits

    @classmethod
    def from_env(cls, env: Env | None = None) -> ApiSettings:
        env = env or Env()
        history_max = env.integer("HISTORY_MAX_LIMIT", 500, minimum=1, maximum=10_000)
        history_rows = env.integer("RATE_LIMIT_HISTORY_ROWS_PER_MINUTE", 20_000)
        if 0 < history_rows < history_max:  # a full page would never fit in the window
            raise ConfigError(
                "RATE_LIMIT_HISTORY_ROWS_PER_MINUTE must be 0 or at least HISTORY_MAX_LIMIT "
                f"({history_max})"
            )
        common = CommonSettings.from_env(env, default_port=defaults.API_PORT)
        return cls(
            common=common,
            database_url=Secret(env.string("DATABASE_URL", defaults.DATABASE_URL)),
            jwt_ttl_seconds=_token_ttl(env, common),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            request_body_timeout_seconds=_positive(env, "REQUEST_BODY_TIMEOUT_SECONDS", 10.0),
            message_max_chars=env.integer("MESSAGE_MAX_CHARS", 4000, minimum=1),
            history_default_limit=env.integer(
                "HISTORY_DEFAULT_LIMIT", 100, minimum=1, maximum=history_max
            ),
            history_max_limit=history_max,
            db_pool_min=env.integer("DB_POOL_MIN", 2, minimum=1),
            db_pool_max=env.integer("DB_POOL_MAX", 10, minimum=1),
            migrate_on_start=env.boolean("MIGRATE_ON_START", True),
            stream_max_len=env.integer("HISTORY_STREAM_MAXLEN", 10_000, minimum=1),
            stream_max_age_seconds=env.integer(
                "HISTORY_STREAM_MAX_AGE_SECONDS", 24 * 3600, minimum=1
            ),
            relay_poll_seconds=env.number("RELAY_POLL_SECONDS", 1.0),
            relay_linger_seconds=env.number("RELAY_LINGER_MS", 2.0) / 1000,
            # Fault injection for the test suite only; see handlers/messages.py.
            failpoint=_failpoint(env, common),
            messages_per_minute=env.integer("RATE_LIMIT_MESSAGES_PER_MINUTE", 120),
            auth_per_minute=env.integer("RATE_LIMIT_AUTH_PER_MINUTE", 30),
            history_rows_per_minute=history_rows,
            history_max_concurrent_reads=env.integer("HISTORY_MAX_CONCURRENT_READS", 4, minimum=1),
            history_max_waiting_reads=env.integer("HISTORY_MAX_WAITING_READS", 64),
            password_hash_workers=env.integer("PASSWORD_HASH_WORKERS", 4, minimum=1, maximum=64),
            password_hash_max_pending=env.integer("PASSWORD_HASH_MAX_PENDING", 16, minimum=1),
            rate_limit_redis_timeout_seconds=env.number("RATE_LIMIT_REDIS_TIMEOUT_SECONDS", 0.5),
            rate_limit_redis_retry_seconds=env.number("RATE_LIMIT_REDIS_RETRY_SECONDS", 2.0),
            web_root=Path(env.string("WEB_ROOT", str(DEFAULT_WEB_ROOT))),
            rooms=RoomLimits.from_env(env),
        )

    def rate_limits(self) -> dict[str, int]:
        """Every per-minute limit of ratelimit.py, by the name the handlers check."""
        return {
            "messages": self.messages_per_minute,
            "auth": self.auth_per_minute,
            "history": self.history_rows_per_minute,
            "rooms_created": self.rooms.rooms_created_per_minute,
            "invites": self.rooms.invites_per_minute,
            "room_posts": self.rooms.room_posts_per_minute,
            "user_search": self.rooms.user_search_per_minute,
            "room_reads": self.rooms.room_reads_per_minute,
            "message_changes": self.rooms.message_changes_per_minute,
            "read_markers": self.rooms.read_markers_per_minute,
        }


def _positive(env: Env, name: str, default: float) -> float:
    """A number of seconds that must be above zero (zero would refuse every body)."""
    value = env.number(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value}")
    return value


def _token_ttl(env: Env, common: CommonSettings) -> int:
    """JWT_TTL_SECONDS, which may not exceed the lifetime every service accepts."""
    ttl = env.integer("JWT_TTL_SECONDS", 24 * 3600, minimum=60)
    if ttl > common.jwt_max_lifetime_seconds:
        raise ConfigError(
            f"JWT_TTL_SECONDS={ttl} exceeds "
            f"JWT_MAX_LIFETIME_SECONDS={common.jwt_max_lifetime_seconds}:"
            " the services would refuse the tokens the API issues"
        )
    return ttl


def _failpoint(env: Env, common: CommonSettings) -> str:
    """CHAT_FAILPOINT, refused in production: it makes the API kill itself after a commit."""
    failpoint = env.string("CHAT_FAILPOINT", "")
    if failpoint and common.production:
        raise ConfigError("APP_ENV=production refuses CHAT_FAILPOINT (fault injection for tests)")
    return failpoint
