//! The service kit: what every supervision service shares and none should write twice.
//!
//! Owns bootstrap (health, reflection, graceful shutdown), storage (one pool over SQLite or
//! PostgreSQL, chosen by URL), identity and access (JWT, the RPC x role table), idempotency, the
//! audit chain, the clock, the field-violation error helpers, and telemetry (logs, traces and
//! metrics, with personal numbers masked). It must not
//! depend on any service crate, nor hold a business rule.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod client;
pub mod clock;
pub mod config;
pub mod contact;
pub mod convert;
pub mod credit_code;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod lock;
pub mod metrics;
pub mod observe;
pub mod outbox;
pub mod personal;
pub mod rate_limit;
pub mod redact;
pub mod storage;
pub mod telemetry;
pub mod vocab;

pub use auth::{Caller, Role};
pub use bootstrap::{GrpcServer, Shutdown};
pub use clock::{Clock, SharedClock};
pub use error::{FieldViolations, internal};
pub use redact::redact;
pub use storage::{Backend, Db, Migrations, StorageError};
pub use vocab::{Bureau, Page, SpecialtyCode};
