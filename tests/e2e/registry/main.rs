//! End-to-end tests of the registry service, over gRPC, on SQLite and on PostgreSQL.

mod access;
mod appointments;
mod calendar;
mod draw_pool;
mod experts;
mod health;
mod idempotency;
mod incidents;
mod institutions;
mod lifecycle;
mod meetings;
mod reflection;
mod relations;
mod tls;
