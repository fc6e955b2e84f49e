"""Domain errors raised below the handlers and turned into HTTP responses in one place.

Every error body is `{"message": ..., "code": ...}` (plus `fields` for validation),
because the existing client reads `message`.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error a client caused or can act on; maps to a 4xx status."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, fields: dict[str, str] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:  # a more precise code than the class's (e.g. 409 `room_full`)
            self.code = code
        self.fields = fields or {}
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"message": self.message, "code": self.code}
        if self.fields:
            body["fields"] = self.fields
        return body


class ValidationFailed(ApiError):
    status = 400
    code = "validation_failed"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class RetryLater(ApiError):
    """A refusal the client may retry after `retry_after` seconds (sent as Retry-After)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class TooManyRequests(RetryLater):
    status = 429
    code = "rate_limited"


class ServiceBusy(RetryLater):
    """The process is at a bound it keeps to stay responsive; the client may retry soon."""

    status = 503
    code = "busy"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotMember(Forbidden):
    """A public room the caller is not a member of, for a member-only action."""

    code = "not_member"


class Unavailable(RetryLater):
    """A dependency the request needs is down; the client may retry after a while."""

    status = 503
    code = "unavailable"


class Unprocessable(ApiError):
    """Well-formed input whose content is refused (e.g. markup in a display name)."""

    status = 422
    code = "unprocessable"
