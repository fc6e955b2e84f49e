"""Every route of the API, declared once: what it takes, who may call it, what it answers.

The app registers this table (app.py) and the OpenAPI document is generated from it
(openapi.py). The page routes (`/`, `/static/...`) are not part of the API and live in
webpage.py.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp.typedefs import Handler

from services.api_service import models, openapi, webpage
from services.api_service.handlers import (
    message_changes,
    messages,
    presence,
    reads,
    rooms,
    users,
)
from services.api_service.routes import (
    BAD_REACTION,
    BAD_REPLY,
    BAD_REQUEST,
    BUSY,
    CONFLICT,
    ID_IN_USE,
    MEMBER_NOT_FOUND,
    MESSAGE_CONFLICT,
    MESSAGE_FORBIDDEN,
    MESSAGE_NOT_FOUND,
    NOT_MEMBER,
    NOT_PLAIN_TEXT,
    NOT_ROOM_MESSAGE,
    POST_CONFLICT,
    RATE_LIMITED,
    ROLE_FORBIDDEN,
    ROOM_CONFLICT,
    ROOM_NOT_FOUND,
    ROOM_NOT_PLAIN_TEXT,
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
    settings: ApiSettings,
    healthz: Handler,
    readyz: Handler,
    history_bound: Callable[[Handler], Handler],
) -> list[Route]:
    """The table; the probes and the bulkhead that bounds history reads are made per app."""
    auth_rate = rate_text("Rate limit", settings.auth_per_minute, "per client address") + "."
    body = with_body(settings)
    list_messages = history_bound(messages.list_messages)
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
            "PATCH",
            "/users/me",
            reads.update_me,
            "updateCurrentUser",
            "auth",
            "Change the account's settings",
            description=(
                "`sendReceipts` false: other people no longer see how far this user has read; "
                "the user's own read markers and unread counts stay. See docs/ROOM_STATE.md."
            ),
            auth=True,
            body=models.UserChanges,
            replies={
                200: Reply("The account as changed.", models.CurrentUser),
                **body,
                401: UNAUTHORIZED,
            },
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
                409: ID_IN_USE,
                429: RATE_LIMITED,
            },
        ),
        *room_routes(settings, history_bound(rooms.room_history)),
        *message_change_routes(settings),
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


def room_routes(settings: ApiSettings, room_history: Handler) -> list[Route]:
    """Rooms, memberships, room history and finding people (docs/ROOMS.md)."""
    limits = settings.rooms
    body = with_body(settings)
    invites = rate_text("Rate limit", limits.invites_per_minute, "per user, adding members")
    name_models = (limits.name_max_chars, limits.topic_max_chars)
    see_rooms = " See docs/ROOMS.md for the rules."
    reads = (
        " "
        + rate_text(
            "Rate limit",
            limits.room_reads_per_minute,
            "per user, for the room list, the public rooms, members and presence together",
        )
        + "."
    )
    return [
        Route(
            "GET",
            "/rooms",
            rooms.list_my_rooms,
            "listMyRooms",
            "rooms",
            "The caller's rooms, each with its newest message and read state",
            description=(
                "The global room first, then the caller's rooms by newest activity (newest "
                "message, or joining when later). `lastMessage` is null while a room has none. "
                "`lastRead` is the caller's read marker (null: none yet), `unread` the messages "
                f"by others after it (counted up to {models.UNREAD_CAP}), `mentions` those of "
                "them that contain `@<the caller's name>` (case-insensitive)." + reads
            ),
            auth=True,
            replies={
                200: Reply("The rooms.", models.RoomList),
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "POST",
            "/rooms",
            rooms.create_room,
            "createRoom",
            "rooms",
            "Create a public or private room",
            description=(
                "The caller is its owner; `members` join as members (each counts as an "
                f"invitation). Up to {limits.max_rooms_per_user} rooms per user and "
                f"{limits.max_members_per_room} members per room (409 `too_many_rooms`, "
                "`room_full`). "
                + rate_text("Rate limit", limits.rooms_created_per_minute, "per user")
                + "; "
                + invites
                + "."
            ),
            auth=True,
            body=models.new_room_model(*name_models),
            replies={
                201: Reply("Created.", models.Room),
                **body,
                401: UNAUTHORIZED,
                409: ROOM_CONFLICT,
                422: ROOM_NOT_PLAIN_TEXT,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "GET",
            "/rooms/public",
            rooms.list_public_rooms,
            "listPublicRooms",
            "rooms",
            "Public rooms by name",
            description=(
                "Ordered by name; `q` keeps the rooms whose name contains it (case-insensitive, "
                "taken literally). Pass `next` as `cursor` for the following page. `role` is the "
                "caller's (null: not a member); there is no `lastMessage`." + reads
            ),
            auth=True,
            query=models.PublicRoomsQuery,
            replies={
                200: Reply("A page of rooms.", models.RoomPage),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "POST",
            "/rooms/direct",
            rooms.open_direct_room,
            "openDirectRoom",
            "rooms",
            "The direct room with a person, created the first time",
            description=(
                "One room per pair of people, also when both open it at the same moment. Its "
                "`name` is the other person's and `peer` is them. Creating one counts against "
                + rate_text("the room creation limit", limits.rooms_created_per_minute, "per user")
                + "."
            ),
            auth=True,
            body=models.UserRef,
            replies={
                201: Reply("Created.", models.Room),
                200: Reply("It existed already.", models.Room),
                **body,
                401: UNAUTHORIZED,
                409: ROOM_CONFLICT,
                422: ROOM_NOT_PLAIN_TEXT,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "GET",
            "/rooms/{room}",
            rooms.room_details,
            "getRoom",
            "rooms",
            "A room, with the caller's role and the member count",
            description="A public room's `lastMessage` is shown to its members only.",
            auth=True,
            replies={
                200: Reply("The room.", models.Room),
                401: UNAUTHORIZED,
                404: ROOM_NOT_FOUND,
            },
        ),
        Route(
            "PATCH",
            "/rooms/{room}",
            rooms.update_room,
            "updateRoom",
            "rooms",
            "Rename, set the topic, turn read receipts on or off, archive or unarchive",
            description=(
                "`name`, `topic` and `receipts`: owner or admin; `archived`: owner. Not the "
                "global room or a direct room (409; direct rooms always show receipts)." + see_rooms
            ),
            auth=True,
            body=models.room_changes_model(*name_models),
            replies={
                200: Reply("The room as changed.", models.Room),
                **body,
                401: UNAUTHORIZED,
                403: ROLE_FORBIDDEN,
                404: ROOM_NOT_FOUND,
                409: ROOM_CONFLICT,
                422: ROOM_NOT_PLAIN_TEXT,
            },
        ),
        Route(
            "GET",
            "/rooms/{room}/members",
            rooms.list_members,
            "listMembers",
            "rooms",
            "The members, owner first then by name",
            description="Members only. Pass `next` as `cursor` for the following page." + reads,
            auth=True,
            query=models.PageQuery,
            replies={
                200: Reply("A page of members.", models.MemberPage),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "GET",
            "/rooms/{room}/presence",
            presence.room_presence,
            "getRoomPresence",
            "rooms",
            "Who of the members is online, with the count",
            description=(
                "Members only; the same order and cursor as the members list. `online` counts "
                "every member online (across all gateway replicas), whatever the page. See "
                "docs/ROOM_STATE.md." + reads
            ),
            auth=True,
            query=models.PageQuery,
            replies={
                200: Reply("The online count and a page of members.", models.RoomPresence),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
                429: RATE_LIMITED,
                503: UNAVAILABLE,
            },
        ),
        Route(
            "POST",
            "/rooms/{room}/join",
            rooms.join_room,
            "joinRoom",
            "rooms",
            "Join a public room",
            description="A member already gets 200 and nothing changes." + see_rooms,
            auth=True,
            replies={
                200: Reply("The room, with the caller as a member.", models.Room),
                401: UNAUTHORIZED,
                404: ROOM_NOT_FOUND,
                409: ROOM_CONFLICT,
            },
        ),
        Route(
            "POST",
            "/rooms/{room}/leave",
            rooms.leave_room,
            "leaveRoom",
            "rooms",
            "Leave a room",
            description=(
                "The owner transfers ownership first (409 `owner_must_transfer`); the global "
                "room and direct rooms cannot be left (409). Leaving a public room one is not "
                "in changes nothing (204)."
            ),
            auth=True,
            replies={
                204: Reply("Left (or was not a member)."),
                401: UNAUTHORIZED,
                404: ROOM_NOT_FOUND,
                409: ROOM_CONFLICT,
            },
        ),
        Route(
            "POST",
            "/rooms/{room}/members",
            rooms.add_member,
            "addMember",
            "rooms",
            "Add a member",
            description=(
                "Any member adds to a public room, owners and admins to a private one; only the "
                f"owner adds an admin. {invites}." + see_rooms
            ),
            auth=True,
            body=models.NewMember,
            replies={
                201: Reply("Added.", models.MemberReply),
                200: Reply("Already a member: nothing changed.", models.MemberReply),
                **body,
                401: UNAUTHORIZED,
                403: ROLE_FORBIDDEN,
                404: ROOM_NOT_FOUND,
                409: ROOM_CONFLICT,
                422: ROOM_NOT_PLAIN_TEXT,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "PATCH",
            "/rooms/{room}/members/{user}",
            rooms.change_member_role,
            "changeMemberRole",
            "rooms",
            "Make a member admin, or back",
            description="The owner only; the owner's own role changes by transferring ownership.",
            auth=True,
            body=models.RoleChange,
            replies={
                200: Reply("The member as changed.", models.MemberReply),
                **body,
                401: UNAUTHORIZED,
                403: ROLE_FORBIDDEN,
                404: MEMBER_NOT_FOUND,
                409: ROOM_CONFLICT,
            },
        ),
        Route(
            "DELETE",
            "/rooms/{room}/members/{user}",
            rooms.remove_member,
            "removeMember",
            "rooms",
            "Remove a member",
            description=(
                "Owners and admins remove members; only the owner removes an admin; nobody "
                "removes the owner. Removing oneself is leaving." + see_rooms
            ),
            auth=True,
            replies={
                204: Reply("Removed."),
                401: UNAUTHORIZED,
                403: ROLE_FORBIDDEN,
                404: MEMBER_NOT_FOUND,
                409: ROOM_CONFLICT,
            },
        ),
        Route(
            "POST",
            "/rooms/{room}/owner",
            rooms.transfer_ownership,
            "transferOwnership",
            "rooms",
            "Transfer ownership to a member",
            description="The owner only; they become an admin.",
            auth=True,
            body=models.UserRef,
            replies={
                200: Reply("The room, with the caller's new role.", models.Room),
                **body,
                401: UNAUTHORIZED,
                403: ROLE_FORBIDDEN,
                404: ROOM_NOT_FOUND,
                409: ROOM_CONFLICT,
                422: ROOM_NOT_PLAIN_TEXT,
            },
        ),
        Route(
            "GET",
            "/rooms/{room}/messages",
            room_history,
            "listRoomMessages",
            "rooms",
            "A page of a room's history, oldest first",
            description=(
                "Paged as `GET /messages`, for one room; members only. Every member reads the "
                "whole history, also what was posted before they joined. Each message as it is "
                "now: `edited` once edited, a deleted one as a tombstone (`deleted`, empty "
                "`text`), `replyTo` for a reply, `reactions` when it has some "
                "(docs/ROOM_STATE.md). " + rows_rate(settings.history_rows_per_minute)
            ),
            auth=True,
            query=models.history_query_model(
                settings.history_default_limit, settings.history_max_limit
            ),
            replies={
                200: Reply("The page, oldest first (possibly empty).", models.RoomMessageList),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
                429: RATE_LIMITED,
                503: BUSY,
            },
        ),
        Route(
            "POST",
            "/rooms/{room}/messages",
            rooms.post_room_message,
            "postRoomMessage",
            "rooms",
            "Post a message to a room",
            description=(
                "As `POST /messages`: sanitized, idempotent per client `id`, published to the "
                "room's members as `message`. With `replyTo`, a reply: it carries the quoted "
                "message's author and an excerpt (`replyTo` of the answer). "
                + rate_text("Rate limit", limits.room_posts_per_minute, "per user and room")
                + ", besides "
                + rate_text("the posting limit", settings.messages_per_minute, "per user")
                + "."
            ),
            auth=True,
            body=models.new_room_message_model(settings.message_max_chars),
            replies={
                201: Reply("Stored (and being published).", models.RoomMessage),
                200: Reply(
                    "Already stored earlier with this `id` by this user: the stored message.",
                    models.RoomMessage,
                ),
                **body,
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
                409: POST_CONFLICT,
                422: BAD_REPLY,
                429: RATE_LIMITED,
            },
        ),
        *read_routes(settings),
        Route(
            "GET",
            "/users",
            rooms.find_people,
            "findUsers",
            "rooms",
            "Find people to message, by exact email or by name prefix",
            description=(
                "Exactly one of `email` (the whole address, case-insensitive) and `name` (the "
                "start of a name, at least 2 characters). Answers ids and names, never emails. "
                + rate_text("Rate limit", limits.user_search_per_minute, "per user")
                + "."
            ),
            auth=True,
            query=models.UserSearchQuery,
            replies={
                200: Reply("The people found (possibly none).", models.People),
                400: BAD_REQUEST,
                401: UNAUTHORIZED,
                429: RATE_LIMITED,
            },
        ),
    ]


def message_change_routes(settings: ApiSettings) -> list[Route]:
    """Editing and deleting messages, and reactions (docs/ROOM_STATE.md)."""
    limits = settings.rooms
    changes = (
        rate_text(
            "Rate limit",
            limits.message_changes_per_minute,
            "per user and room, for edits, deletions and reactions together",
        )
        + "."
    )
    events = " Members receive it as `{}` (live, and on reconnect with `lastId`)."
    path = "/rooms/{room}/messages/{message}"
    reaction_refusals = {
        401: UNAUTHORIZED,
        403: NOT_MEMBER,
        404: MESSAGE_NOT_FOUND,
        409: MESSAGE_CONFLICT,
        422: BAD_REACTION,
        429: RATE_LIMITED,
    }
    return [
        Route(
            "PATCH",
            path,
            message_changes.edit_message,
            "editMessage",
            "rooms",
            "Edit a message (its author)",
            description=(
                "The new `text` is sanitized as when posting. Not a deleted message (409 "
                "`deleted`) nor in an archived room (409 `archived`); the same text again changes "
                "nothing." + events.format("messageEdited") + " " + changes
            ),
            auth=True,
            body=models.message_edit_model(settings.message_max_chars),
            replies={
                200: Reply("The message as edited.", models.RoomMessage),
                **with_body(settings),
                401: UNAUTHORIZED,
                403: MESSAGE_FORBIDDEN,
                404: MESSAGE_NOT_FOUND,
                409: MESSAGE_CONFLICT,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "DELETE",
            path,
            message_changes.delete_message,
            "deleteMessage",
            "rooms",
            "Delete a message (its author, or the room's owner and admins)",
            description=(
                "The message stays in history as a tombstone (`deleted`, empty `text`); replies "
                "to it keep their place but lose the excerpt. Deleting it again changes "
                "nothing (204). In the global room only the author deletes."
                + events.format("messageDeleted")
                + " "
                + changes
            ),
            auth=True,
            replies={
                204: Reply("Deleted (or was already)."),
                401: UNAUTHORIZED,
                403: MESSAGE_FORBIDDEN,
                404: MESSAGE_NOT_FOUND,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "PUT",
            path + "/reactions/{emoji}",
            message_changes.add_reaction,
            "addReaction",
            "rooms",
            "React to a message with an emoji",
            description=(
                "Idempotent: reacting again with the same emoji changes nothing. At most "
                f"{limits.max_reactions_per_message} different emoji per message (409 "
                "`too_many_reactions`); not on a deleted message or in an archived room (409)."
                + events.format("reactionsChanged")
                + " "
                + changes
            ),
            auth=True,
            replies={
                204: Reply("The caller's reaction is there."),
                **reaction_refusals,
            },
        ),
        Route(
            "DELETE",
            path + "/reactions/{emoji}",
            message_changes.remove_reaction,
            "removeReaction",
            "rooms",
            "Take back one's reaction",
            description=(
                "Idempotent: removing a reaction that is not there changes nothing."
                + events.format("reactionsChanged")
                + " "
                + changes
            ),
            auth=True,
            replies={
                204: Reply("The caller's reaction is gone."),
                **reaction_refusals,
            },
        ),
    ]


def read_routes(settings: ApiSettings) -> list[Route]:
    """Read markers and receipts (docs/ROOM_STATE.md, "Read state")."""
    return [
        Route(
            "PUT",
            "/rooms/{room}/read",
            reads.mark_read,
            "markRead",
            "rooms",
            "Move the caller's read marker forward",
            description=(
                "Members only. `lastRead` must be the `_id` of a message of this room (422 "
                "otherwise). A marker never moves back: a smaller `_id` changes nothing (204 "
                "either way). A marker that moved reaches the caller's other rooms-aware "
                "connections as `readUpdated`, and the room's members as a batched `receipts` "
                "event when the room shows receipts and the caller sends them. "
                + rate_text("Rate limit", settings.rooms.read_markers_per_minute, "per user")
                + "."
            ),
            auth=True,
            body=models.ReadMarker,
            replies={
                204: Reply("The marker is at `lastRead` or further."),
                **with_body(settings),
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
                422: NOT_ROOM_MESSAGE,
                429: RATE_LIMITED,
            },
        ),
        Route(
            "GET",
            "/rooms/{room}/receipts",
            reads.list_receipts,
            "listReceipts",
            "rooms",
            "How far the room's other members have read",
            description=(
                "Members only. Direct rooms, and group rooms with `receipts` on; otherwise the "
                "list is empty. Members who switched `sendReceipts` off, and those without a "
                f"marker, are not listed. The {models.RECEIPTS_MAX} furthest readers, furthest "
                "first."
            ),
            auth=True,
            replies={
                200: Reply("The readers.", models.ReceiptList),
                401: UNAUTHORIZED,
                403: NOT_MEMBER,
                404: ROOM_NOT_FOUND,
            },
        ),
    ]
