-- Runs once, when the dev PostgreSQL initialises its empty data directory, in the database
-- POSTGRES_DB names (registry). Each service owns its own database.
CREATE DATABASE recruitment;
CREATE DATABASE dispatch;
CREATE DATABASE finance;
