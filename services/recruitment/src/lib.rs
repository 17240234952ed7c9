//! 征集与任用 — the recruitment service: the six steps of article 7 up to appointment, and
//! renewal (article 11). docs/recruitment.md describes the procedure, each rule and its test.
//!
//! Owns calls, applications with their materials and reviews, publicity batches, objections,
//! appointment decisions, re-application checks (D21) and renewals in its own tables; applicants'
//! personal data only encrypted, with the deployment's personal-data key, as the registry does.
//! Depends on the kit and the contracts; reaches the registry only over gRPC: synchronously for
//! GetReapplicationFlags and ListAppointments, through the outbox for AppointExpert and RenewTerm.

pub mod app;
pub mod applications;
pub mod appointments;
pub mod calls;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod publicity;
pub mod reapplication;
pub mod renewals;
pub mod store;

pub use app::{App, Config};
