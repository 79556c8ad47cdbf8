"""Data shapes: settings, API schemas, workflow/activity payloads, SQLModel tables, DB factory.

Payload models (plain Pydantic) live apart from ``tables`` (SQLModel ``table=True``):
a table object never travels in a Temporal payload.
"""
