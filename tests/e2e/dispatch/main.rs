//! End-to-end tests of the dispatch service, over gRPC, on SQLite and on PostgreSQL.

mod draws;
mod submissions;
mod tasks;
