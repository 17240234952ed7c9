//! 劳务费 — the finance service: labour fees of article 10, the class-hour cap, the
//! civil-servant exemption, tax withholding, payment batches and exports.
//!
//! Owns fee lines, statements, batches and export records in its own tables. It never stores a
//! payee's identity or bank details: it fetches them from the registry when it writes a file that
//! needs them. Depends on the kit and the contracts only.

pub mod app;
pub mod batches;
pub mod convert;
pub mod domain;
pub mod error;
pub mod exports;
pub mod fee_lines;
pub mod grpc;
pub mod reconcile;
pub mod registry;
pub mod statements;
pub mod store;

pub use app::{App, Config};
