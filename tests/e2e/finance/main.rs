//! End-to-end tests of the finance service, over gRPC, on SQLite and on PostgreSQL.

mod fees;
mod ledger;
