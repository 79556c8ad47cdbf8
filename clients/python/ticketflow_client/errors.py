"""The API's error answers as exceptions, one class per status a caller handles differently.

Every exception carries the HTTP status, the API's ``code`` (``not_found``, ``invalid_transition``…)
and the decoded body, so nothing the server said is lost.
"""

from typing import Any


class TicketflowError(Exception):
    """Any non-2xx answer (or a body the client cannot read)."""

    def __init__(self, status: int, detail: str, code: str | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {detail}" if code else f"{status}: {detail}")
        self.status, self.detail, self.code, self.body = status, detail, code, body


class Unauthorized(TicketflowError):
    """401: no key, or one the server does not know."""


class Forbidden(TicketflowError):
    """403: known caller, not allowed to do this."""


class NotFound(TicketflowError):
    """404: no such object in the caller's regions (an object outside them is a 404 too)."""


class Conflict(TicketflowError):
    """409: e.g. an action the ticket's status does not allow; ``status_now`` and
    ``allowed_actions`` say what it does allow."""

    @property
    def status_now(self) -> str | None:
        return self.body.get("status") if isinstance(self.body, dict) else None

    @property
    def allowed_actions(self) -> list[str] | None:
        return self.body.get("allowed_actions") if isinstance(self.body, dict) else None


class ValidationFailed(TicketflowError):
    """422: ``problems`` is the server's list (``loc``, ``msg``, ``type``); ``fields`` their
    locations as dotted paths (``body.title``)."""

    def __init__(self, status: int, detail: str, problems: list[dict[str, Any]], body: Any = None) -> None:
        super().__init__(status, detail, "invalid", body)
        self.problems = problems
        self.fields = [".".join(str(p) for p in problem.get("loc", [])) for problem in problems]


class RateLimited(TicketflowError):
    """429 after the client's retries ran out; ``retry_after`` in seconds when the server said."""

    def __init__(self, status: int, detail: str, code: str | None, body: Any, retry_after: float | None) -> None:
        super().__init__(status, detail, code, body)
        self.retry_after = retry_after


class ServerError(TicketflowError):
    """5xx (after retries, for 503)."""
