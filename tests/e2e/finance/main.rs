//! End-to-end tests of the finance service, over gRPC, on SQLite and on PostgreSQL.

mod batches;
mod fees;
mod ledger;
