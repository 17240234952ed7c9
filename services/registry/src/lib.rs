//! 专家信息库 — the registry service: the expert database of article 14 and the source of truth
//! for who may be dispatched.
//!
//! Owns institutions (and, as the registry grows, experts, relations, terms, incidents and
//! meetings) in its own tables. Depends on the kit and the contracts only; no other service's
//! storage.

pub mod app;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod institutions;
pub mod store;

pub use app::{App, Config};
