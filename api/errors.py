"""Domain errors raised by services, and the one place they become HTTP responses.

Besides the domain errors: FastAPI's own 422 never echoes a large input back, and a database
that cannot answer now (locked, timed out, unreachable, out of connections) is a 503 with
``Retry-After`` — never a 500 with a stack. Any other database error is a bug and stays a 500.
Every other 503 (``ServiceUnavailable``: Temporal or a worker cannot take the request now) asks
for a retry the same way.
"""

import logging
import math
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

# A 422 shows at most this much of the offending value (strings cut, lists and objects left out).
MAX_ECHO = 200
# Seconds a client is asked to wait after a 503 (a database fault, Temporal unavailable…).
RETRY_AFTER_S = 5


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


class PayloadTooLarge(DomainError):
    """A body, or what it holds (an event, a message, an import's rows), over its limit."""

    status_code, code = 413, "too_large"


class UnsupportedMediaType(DomainError):
    status_code, code = 415, "unsupported_media_type"


class ServiceUnavailable(DomainError):
    """Something the request needs (Temporal, a worker, the identity provider…) cannot answer now:
    send the same request again (the answer carries ``Retry-After``)."""

    status_code, code = 503, "unavailable"
    retry_after_s = RETRY_AFTER_S


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
    headers = {"WWW-Authenticate": 'ApiKey, Bearer realm="ticketflow"'} if isinstance(exc, Unauthenticated) else None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def _echo(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[: MAX_ECHO - 1] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # inf / nan: not JSON, shown as text
    if value is None or isinstance(value, bool | int | float):
        return value if len(repr(value)) <= MAX_ECHO else None
    return None


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)


def validation_problems(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's 422 items with ``loc``, ``msg`` and ``type``; ``input`` only when it is a short
    scalar (cut to ``MAX_ECHO`` characters), ``ctx`` only when it is short."""
    out = []
    for e in errors:
        item: dict[str, Any] = {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", ""))[:1000],
            "type": str(e.get("type", "value_error")),
        }
        shown = _echo(e.get("input"))
        if shown is not None:
            item["input"] = shown
        if ctx := e.get("ctx"):
            ctx = jsonable_encoder(ctx, custom_encoder={Exception: str, float: _finite})
            if len(repr(ctx)) <= MAX_ECHO:
                item["ctx"] = ctx
        out.append(item)
    return out


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_problems(exc.errors())}, status_code=422)


# SQLite result codes and PostgreSQL SQLSTATE classes that mean "not now", not "wrong".
_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",
    "SQLITE_READONLY",
)
# 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator intervention
# (statement timeout, shutdown), 58 system; 55P03 lock not available; 25006 read-only (fail-over).
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_PG_TRANSIENT_STATES = ("55P03", "25006")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error is the database not answering now (503), not a bug (500)."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection free in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return str(getattr(orig, "sqlite_errorname", "")).startswith(_SQLITE_TRANSIENT)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT_STATES
    return isinstance(exc, sa_exc.OperationalError)  # no code: the connection itself failed


async def _database(_request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc  # a bug: ServerErrorMiddleware answers 500 and logs it
    log.warning("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    return JSONResponse(
        {"detail": "the database cannot answer now; retry shortly", "code": "database_unavailable"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(sa_exc.DBAPIError, _database)
    app.add_exception_handler(sa_exc.TimeoutError, _database)
