//! 抽取与委派 — the dispatch service: supervision tasks, the verifiable random draw, responses,
//! replacements, reports, and experts' submissions (articles 7-9).
//!
//! Owns submissions, tasks, draws, assignments and their bookings (and, as dispatch grows, letters,
//! sessions and reports) in its own tables. Depends on the kit, the contracts and the pure draw
//! algorithm (`supervision-draw`); reaches the registry (synchronously for institutions and the
//! draw pool, `registry.rs`) and finance only over gRPC.

pub mod app;
pub mod convert;
pub mod domain;
pub mod draws;
pub mod error;
pub mod grpc;
pub mod registry;
pub mod store;
pub mod submissions;
pub mod tasks;

pub use app::{App, Config};
