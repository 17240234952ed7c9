//! 征集与任用 — the recruitment service: the six steps of article 7 up to appointment, and
//! renewal (article 11).
//!
//! Owns calls, applications with their materials and reviews (and, as recruitment grows,
//! publicity batches, objections and appointment decisions) in its own tables; applicants'
//! personal data only encrypted, with the deployment's personal-data key, as the registry does.
//! Depends on the kit and the contracts; reaches the registry only over gRPC.

pub mod app;
pub mod applications;
pub mod calls;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod publicity;
pub mod store;

pub use app::{App, Config};
