"""The ops CLI: ``python -m cli <command>`` (or the ``ticketflow`` console script).

It connects with the service's own settings (``TICKETFLOW_DATABASE_URL``,
``TICKETFLOW_TEMPORAL_ADDRESS``, ``TICKETFLOW_TEMPORAL_NAMESPACE``…, ``models/settings.py``).
Commands: ``rebuild-read-model`` (``cli/rebuild.py``).
"""
