//! End-to-end tests of the registry service, over gRPC, on SQLite and on PostgreSQL.

mod health;
mod institutions;
mod reflection;
