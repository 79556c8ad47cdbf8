-- Runs once, when the postgresql volume is first initialised (docker-entrypoint-initdb.d),
-- as the superuser (POSTGRES_USER=temporal). Temporal's auto-setup creates its own
-- `temporal` and `temporal_visibility` databases; this creates the application's.
-- The password comes from the container's TICKETFLOW_DB_PASSWORD (psql's \getenv, psql >= 15),
-- which docker-compose.yml sets from ${POSTGRES_PASSWORD:-ticketflow}.
\getenv ticketflow_password TICKETFLOW_DB_PASSWORD
CREATE ROLE ticketflow LOGIN PASSWORD :'ticketflow_password';
CREATE DATABASE ticketflow OWNER ticketflow;
REVOKE ALL ON DATABASE ticketflow FROM PUBLIC;
