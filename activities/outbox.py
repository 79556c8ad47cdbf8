"""What the outbox delivery loops share (notifications, customer messages, webhooks): the
retry delay, the failure text kept on a row, and a pass-until-dry for tests and ops."""

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

C = TypeVar("C")


def retry_delay(first_s: float, cap_s: float, doublings: int) -> float:
    """Seconds until the next attempt: ``first_s`` doubled ``doublings`` times, capped, then
    jittered into its upper half (senders that failed together do not retry together)."""
    delay = min(first_s * 2**doublings, cap_s)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not a secret


def failure_text(exc: BaseException, *plain: type[BaseException]) -> str:
    """What a row keeps of a failed attempt: the message of the kinds the channel raises on
    purpose (``plain``), else the exception's type and message."""
    return str(exc) if isinstance(exc, plain) else f"{type(exc).__name__}: {exc}"


async def until_dry(pass_once: Callable[[C], Awaitable[int]], channels: Iterable[C]) -> int:
    """Every channel at once, pass after pass, until nothing more is due now; how many moved."""
    lanes, total = list(channels), 0
    while True:
        moved = sum(await asyncio.gather(*(pass_once(c) for c in lanes)))
        total += moved
        if not moved:
            return total
