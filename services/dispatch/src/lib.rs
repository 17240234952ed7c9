//! 抽取与委派 — the dispatch service: supervision tasks, the verifiable random draw, responses,
//! replacements, reports, and experts' submissions (articles 7-9).
//!
//! Owns submissions (and, as dispatch grows, tasks, draws, assignments, letters, sessions and
//! reports) in its own tables. Depends on the kit and the contracts; reaches the registry and
//! finance only over gRPC.

pub mod app;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod store;
pub mod submissions;

pub use app::{App, Config};
