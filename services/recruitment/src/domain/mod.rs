//! Recruitment's rules, free of gRPC and SQL.

pub mod call;

pub use call::{Call, CallFilter, CallId, CallStatus, NewCall, RequiredMaterial};
