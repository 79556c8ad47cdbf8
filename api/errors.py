"""Domain errors raised by services, and the one place they become HTTP responses."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class Unauthenticated(DomainError):
    status_code, code = 401, "unauthenticated"


class Forbidden(DomainError):
    status_code, code = 403, "forbidden"


class NotFound(DomainError):
    status_code, code = 404, "not_found"


class InvalidTransition(DomainError):
    """The action is not allowed in the ticket's current status (extra: status, allowed_actions)."""

    status_code, code = 409, "invalid_transition"


class Conflict(DomainError):
    status_code, code = 409, "conflict"


class ServiceUnavailable(DomainError):
    status_code, code = 503, "unavailable"


class ActionTimedOut(DomainError):
    status_code, code = 504, "timeout"


class FieldInvalid(DomainError):
    """A body field that is well-formed but wrong (unknown region, …): FastAPI's 422 list shape."""

    status_code, code = 422, "invalid_field"

    def __init__(self, field: str, reason: str, type_: str = "value_error", location: str = "body") -> None:
        super().__init__(reason)
        self.loc = [location, *field.split(".")]
        self.type_ = type_

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": self.loc, "msg": self.detail, "type": self.type_}]}


class ProblemList(DomainError):
    """Several 422 problems at once, each ``{"loc": [...], "msg": ..., "type": ...}``."""

    status_code, code = 422, "invalid"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems

    def body(self) -> dict[str, Any]:
        return {"detail": self.problems}


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "ApiKey"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle)
