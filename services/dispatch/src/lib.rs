//! 抽取与委派 — the dispatch service: supervision tasks, the verifiable random draw, responses,
//! replacements, reports, and experts' submissions (articles 7-9).
//!
//! Owns submissions and tasks (and, as dispatch grows, draws, assignments, letters, sessions and
//! reports) in its own tables. Depends on the kit and the contracts; reaches the registry (synchronously for
//! institutions, `registry.rs`) and finance only over gRPC.

pub mod app;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod registry;
pub mod store;
pub mod submissions;
pub mod tasks;

pub use app::{App, Config};
