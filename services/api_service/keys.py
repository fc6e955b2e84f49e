"""Typed keys for what the app and a request carry, declared in one place."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from services.api_service.passwords import Passwords
from services.api_service.publisher import MessagePublisher
from services.api_service.settings import ApiSettings
from services.shared.auth import Identity

SETTINGS = web.AppKey("settings", ApiSettings)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
PASSWORDS = web.AppKey("passwords", Passwords)
PUBLISHER = web.AppKey("publisher", MessagePublisher)
REQUEST_ID = web.RequestKey("request_id", str)
IDENTITY = web.RequestKey("identity", Identity)
