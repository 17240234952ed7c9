//! Finance's rules, free of gRPC and SQL.

pub mod export;
pub mod ledger;
pub mod money;

pub use export::{ExportId, ExportKind, ExportRecord, FileEncoding};
pub use ledger::{Ledger, LedgerQuery, LedgerRow, MonthRange, YearMonth};
