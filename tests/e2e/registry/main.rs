//! End-to-end tests of the registry service, over gRPC, on SQLite and on PostgreSQL.

mod access;
mod appointments;
mod calendar;
mod draw_pool;
mod experts;
mod health;
mod idempotency;
mod institutions;
mod reflection;
mod relations;
mod tls;
