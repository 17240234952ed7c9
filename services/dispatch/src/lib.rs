//! 抽取与委派 — the dispatch service: supervision tasks, the verifiable random draw, responses,
//! replacements, reports, and experts' submissions (articles 7-9).
//!
//! Owns submissions, tasks, draws, assignments with their answers and bookings, worked sessions and
//! reports (and, as dispatch grows, letters) in its own tables. Depends on the kit, the contracts
//! and the pure draw algorithm (`supervision-draw`); reaches the registry (synchronously for
//! institutions and the draw pool, `registry.rs`; through the outbox for incidents and recusals,
//! `responses.rs`) and finance (through the outbox for report revisions, `reports.rs`) only over
//! gRPC.

pub mod app;
pub mod assignment_view;
pub mod attachments;
pub mod convert;
pub mod designate;
pub mod domain;
pub mod draws;
pub mod error;
pub mod grpc;
pub mod letters;
pub mod metrics;
pub mod notify;
pub mod pool_copy;
pub mod registry;
pub mod reports;
pub mod responses;
pub mod store;
pub mod submissions;
pub mod sweep;
pub mod tasks;
pub mod yearly;

pub use app::{App, Config};
