//! End-to-end tests of the registry service, over gRPC, on SQLite and on PostgreSQL.

mod access;
mod calendar;
mod experts;
mod health;
mod idempotency;
mod institutions;
mod reflection;
mod tls;
