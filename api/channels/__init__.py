"""Inbound channel adapters: one small module per kind of channel, registered here by name.

A channel record (``models/channel_tables.py``) names its adapter; the router verifies the
signature, then asks the adapter to turn the request into an ``InboundMessage`` (and to answer
the platform's handshake, if it makes one). Add an adapter: write a module with an ``Adapter``
subclass, add an instance below, test it (docs/channels.md).
"""

from api.channels.app import AppAdapter
from api.channels.base import Adapter, InboundMessage, Intent
from api.channels.qr_form import QrFormAdapter
from api.channels.wechat import WeChatAdapter

__all__ = ["ADAPTERS", "Adapter", "InboundMessage", "Intent", "adapter", "default_adapter"]

ADAPTERS: dict[str, Adapter] = {a.name: a for a in (WeChatAdapter(), QrFormAdapter(), AppAdapter())}


def adapter(name: str) -> Adapter | None:
    return ADAPTERS.get(name)


def default_adapter(kind: str) -> str | None:
    """The adapter a channel of ``kind`` uses when its record names none."""
    return next((a.name for a in ADAPTERS.values() if a.kind == kind), None)
