//! End-to-end tests of the registry service, over gRPC, on SQLite and on PostgreSQL.

mod access;
mod appointments;
mod calendar;
mod documents;
mod draw_pool;
mod expert_copies;
mod experts;
mod health;
mod idempotency;
mod import_export;
mod incidents;
mod institutions;
mod lifecycle;
mod meetings;
mod one_statement_read;
mod races;
mod reflection;
mod relations;
mod specialties;
mod tls;
