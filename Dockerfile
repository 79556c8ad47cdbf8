# Ticketflow image: one image for the API (default), the worker and the migration job.
#   docker build -t ticketflow .
#   docker run ticketflow                          # API   (python -m api)
#   docker run ticketflow python -m workers        # worker
#   docker run ticketflow alembic upgrade head     # migrations
# All configuration comes from TICKETFLOW_* environment variables (models/settings.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first (their layer survives code changes): install the project from
# pyproject.toml with a placeholder package, then drop the placeholder.
COPY pyproject.toml ./
RUN mkdir api && touch api/__init__.py \
 && pip install . \
 && pip uninstall -y ticketflow \
 && rm -rf api build *.egg-info

# The application: packages, alembic.ini, migrations/, templates/ (see .dockerignore).
# Bytecode is compiled here because PYTHONDONTWRITEBYTECODE stops Python writing it later:
# the workflow sandbox re-imports workflows/ for every ticket run a worker starts, and
# without .pyc files it compiles them from source each time (about 10 % of the ticket
# lifecycle benchmark's throughput).
COPY . .
RUN pip install --no-deps . ./clients/python \
 && python -m compileall -q /app \
 && rm -rf build *.egg-info \
 && mkdir -p templates .data \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ticketflow \
 && chown ticketflow .data

USER ticketflow

ENV TICKETFLOW_API_HOST=0.0.0.0 \
    TICKETFLOW_API_PORT=8000
EXPOSE 8000

CMD ["python", "-m", "api"]
