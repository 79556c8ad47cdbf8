"""The ops CLI: ``python -m cli <command>`` (or the ``ticketflow`` console script).

It connects with the service's own settings (``TICKETFLOW_DATABASE_URL``,
``TICKETFLOW_TEMPORAL_ADDRESS``, ``TICKETFLOW_TEMPORAL_NAMESPACE``…, ``models/settings.py``).
Commands that change or read tickets, templates, people and customers go through the API with
the typed client (``cli/api.py``); docs/cli.md is the reference.
"""
