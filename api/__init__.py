"""The thin FastAPI gateway: ``python -m api`` serves it with uvicorn."""
