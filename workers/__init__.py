"""Worker entry points: ``python -m workers`` runs one worker for the ticket task queue."""
