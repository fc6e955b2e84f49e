"""Typed keys for what the app and a request carry, declared in one place."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from services.api_service.db.pool import FairPool
from services.api_service.passwords import Passwords
from services.api_service.ratelimit import RateLimits
from services.api_service.read_notices import ReadNotices
from services.api_service.relay import OutboxRelay
from services.api_service.settings import ApiSettings
from services.api_service.writer import MessageWriter
from services.shared.auth import Identity, TokenVerifier

SETTINGS = web.AppKey("settings", ApiSettings)
DB_POOL = web.AppKey("db_pool", FairPool)
REDIS = web.AppKey("redis", aioredis.Redis)
PASSWORDS = web.AppKey("passwords", Passwords)
RELAY = web.AppKey("relay", OutboxRelay)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
READ_NOTICES = web.AppKey("read_notices", ReadNotices)
MESSAGE_WRITER = web.AppKey("message_writer", MessageWriter)
TOKENS = web.AppKey("tokens", TokenVerifier)
API_DOCUMENT = web.AppKey("api_document", bytes)  # /openapi.json, encoded once
REQUEST_ID = web.RequestKey("request_id", str)
IDENTITY = web.RequestKey("identity", Identity)
