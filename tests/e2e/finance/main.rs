//! End-to-end tests of the finance service, over gRPC, on SQLite and on PostgreSQL.

mod batches;
mod exports;
mod fees;
mod ledger;
mod property;
