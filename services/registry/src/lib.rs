//! 专家信息库 — the registry service: the expert database of article 14 and the source of truth
//! for who may be dispatched.
//!
//! Owns institutions and experts (and, as the registry grows, relations, terms, incidents and
//! meetings) in its own tables; experts' personal data only encrypted, with the deployment's
//! personal-data key. Depends on the kit and the contracts only; no other service's
//! storage.

pub mod app;
pub mod appointments;
pub mod convert;
pub mod documents;
pub mod domain;
pub mod error;
pub mod expert_cache;
pub mod experts;
pub mod grpc;
pub mod incidents;
pub mod institutions;
pub mod lifecycle;
pub mod meetings;
pub mod reapplication;
pub mod relations;
pub mod sheets;
pub mod store;
pub mod transfer;

pub use app::{App, Config};
