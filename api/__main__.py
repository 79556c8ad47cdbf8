"""``python -m api``: serve the gateway with uvicorn on TICKETFLOW_API_HOST:TICKETFLOW_API_PORT."""

import uvicorn

from api.app import create_app
from models.settings import get_settings
from workers.logs import configure_logging

settings = get_settings()
configure_logging(settings.log_level)
uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level=settings.log_level.lower())
