"""Every route of the API, declared once: what it takes, who may call it, what it answers.

The app registers this table (app.py) and the OpenAPI document is generated from it
(openapi.py). The page routes (`/`, `/static/...`) are not part of the API and live in
webpage.py.
"""

from __future__ import annotations

from aiohttp.typedefs import Handler

from services.api_service import models, openapi, webpage
from services.api_service.handlers import messages, users
from services.api_service.routes import (
    BAD_REQUEST,
    BUSY,
    CONFLICT,
    NOT_PLAIN_TEXT,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    WRONG_PASSWORD,
    Reply,
    Route,
    rate_text,
    with_body,
)
from services.api_service.settings import ApiSettings
from services.shared.metrics import metrics_handler


def rows_rate(per_minute: int) -> str:
    if per_minute <= 0:
        return "Rate limit: none."
    return (
        f"Rate limit: {per_minute} rows per minute per user, each request counting its `limit` "
        "(429 with Retry-After above)."
    )


def api_routes(
    settings: ApiSettings, healthz: Handler, readyz: Handler, list_messages: Handler
) -> list[Route]:
    """The table; the probes and the (bulkhead-bound) history handler are made per app."""
    auth_rate = rate_text("Rate limit", settings.auth_per_minute, "per client address") + "."
    body = with_body(settings)
    return [
        Route(
            "POST",
            "/signup",
            users.signup,
            "signUp",
            "auth",
            "Create an account",
            description=(
                "Creates a user. Emails are unique regardless of case. Surrounding whitespace of "
                f"`name` and `email` is stripped before they are checked. {auth_rate}"
            ),
            body=models.SignUpRequest,
            replies={
                201: Reply("The account was created.", models.User),
                **body,
                409: CONFLICT,
                422: NOT_PLAIN_TEXT,
                429: RATE_LIMITED,
                503: BUSY,
            },
        ),
        Route(
            "POST",
            "/signin",
            users.signin,
            "signIn",
            "auth",
            "Exchange email and password for a token",
            description=(
                f"An unknown email and a wrong password get the same 401 answer. {auth_rate}"
            ),
            body=models.SignInRequest,
            replies={
                200: Reply("Signed in.", models.Token),
                **body,
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
                503: BUSY,
            },
        ),
        Route(
            "GET",
            "/users/me",
            users.me,
            "currentUser",
            "auth",
            "The account the token belongs to",
            auth=True,
            replies={200: Reply("The current user.", models.CurrentUser), 401: UNAUTHORIZED},
        ),
        Route(
            "DELETE",
            "/users/me",
            users.delete_me,
            "deleteAccount",
            "auth",
            "Delete the token's account",
            description=(
                "Needs the account's password again. Every token of the account stops working at "
                "once: REST routes answer 401, the gateways drop and refuse its sockets. The "
                'account\'s messages stay in the shared history with `userName` `"Deleted user"`. '
                f"Answers 503 (nothing deleted) while the gateways cannot be told. {auth_rate}"
            ),
            auth=True,
            body=models.PasswordConfirmation,
            replies={
                204: Reply("The account is deleted."),
                **body,
                401: UNAUTHORIZED,
                403: WRONG_PASSWORD,
                429: RATE_LIMITED,
                503: UNAVAILABLE,
            },
        ),
        Route(
            "GET",
            "/messages",
            list_messages,
            "listMessages",
            "messages",
            "A page of the history, oldest first",
            description=(
                "Without `before`/`after`: the newest `limit` messages. `before=<_id>` pages back "
                "from a message; `after=<_id>` catches up from one. Either way the page is in "
                "chronological order (increasing `_id`). `_id`s increase in the order messages "
                "become visible, so `after` never skips a message. "
                + rows_rate(settings.history_rows_per_minute)
            ),
            auth=True,
            query=models.history_query_model(
                settings.history_default_limit, settings.history_max_limit
            ),
            replies={
                200: Reply("The page, oldest first (possibly empty).", models.MessageList),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
                503: BUSY,
            },
        ),
        Route(
            "POST",
            "/messages",
            messages.post_message,
            "postMessage",
            "messages",
            "Post a message as the token's user",
            description=(
                "Stores the message, then publishes it to every Socket.IO client "
                "(`getAllmessages`). The author (`owner`, `userName`) comes from the token; the "
                "body's values are ignored. `text` is sanitized with an HTML allow-list (inline "
                "formatting, lists, quotes, code, links; no images or other embeds). Posting again "
                "with the same `id` is safe: the answer is 200 with the message stored the first "
                "time, and nothing is published twice. "
                + rate_text("Rate limit", settings.messages_per_minute, "per user")
                + "."
            ),
            auth=True,
            body=models.new_message_model(settings.message_max_chars),
            replies={
                201: Reply("Stored (and being published).", models.Message),
                200: Reply(
                    "Already stored earlier with this `id` by this user: the stored message.",
                    models.Message,
                ),
                **body,
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "GET",
            "/healthz",
            healthz,
            "health",
            "operations",
            "Liveness: the process serves requests",
            replies={200: Reply("Alive.", models.Health)},
        ),
        Route(
            "GET",
            "/readyz",
            readyz,
            "readiness",
            "operations",
            "Readiness: PostgreSQL answers",
            description=(
                "A load balancer takes the replica out of rotation while this is 503. Redis is "
                'optional: while it is down the answer stays 200 with `"redis": "degraded"` '
                "(rate limits count in memory, the relay publishes later)."
            ),
            replies={
                200: Reply("Ready.", models.Readiness),
                503: Reply(
                    "PostgreSQL does not answer.",
                    models.Readiness,
                    example={
                        "status": "unavailable",
                        "postgres": "unavailable",
                        "redis": "ok",
                        "pid": 4242,
                    },
                ),
            },
        ),
        Route(
            "GET",
            "/metrics",
            metrics_handler,
            "metrics",
            "operations",
            "Prometheus metrics of this process",
            replies={200: Reply("Prometheus text exposition format.", media_type="text/plain")},
        ),
        Route(
            "GET",
            "/openapi.json",
            openapi.openapi_json,
            "openapi",
            "operations",
            "This document",
            replies={200: Reply("The OpenAPI 3.1 document.", models.OpenApiDocument)},
        ),
        Route(
            "GET",
            "/docs",
            webpage.docs_page(settings.web_root),
            "docs",
            "operations",
            "This document as a readable page (Swagger UI)",
            replies={
                200: Reply("An HTML page that renders `/openapi.json`.", media_type="text/html")
            },
        ),
    ]
