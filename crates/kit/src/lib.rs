//! The service kit: what every supervision service shares and none should write twice.
//!
//! Owns bootstrap (health, reflection, graceful shutdown), storage (one pool over SQLite or
//! PostgreSQL, chosen by URL), the field-violation error helpers and tracing set-up. It must not
//! depend on any service crate, nor hold a business rule.

pub mod bootstrap;
pub mod error;
pub mod storage;
pub mod telemetry;
pub mod vocab;

pub use bootstrap::{GrpcServer, Shutdown};
pub use error::{FieldViolations, internal};
pub use storage::{Backend, Db, Migrations, StorageError};
pub use vocab::{Bureau, Page};
