//! End-to-end tests of the recruitment service, over gRPC, on SQLite and on PostgreSQL.

mod applications;
mod appointment;
mod calls;
mod publicity;
mod reviews;
