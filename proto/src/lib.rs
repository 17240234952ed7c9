//! The gRPC contracts of the supervision system, generated from `proto/supervision/**`.
//!
//! Owns nothing but generated code and the descriptor set; depends on nothing of ours. The
//! `client` and `server` features choose which stubs are generated, so the CLI builds clients only.
//! Every server trait has a default implementation of each RPC that answers `UNIMPLEMENTED`
//! (`docs/api-status.md` lists which RPCs are real and which issue builds the rest); with default
//! stubs, server-streaming RPCs return a `BoxStream` instead of an associated stream type.

/// The encoded `FileDescriptorSet` of every contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod supervision {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("supervision.common.v1");
        }
    }
    pub mod calendar {
        pub mod v1 {
            tonic::include_proto!("supervision.calendar.v1");
        }
    }
    pub mod registry {
        pub mod v1 {
            tonic::include_proto!("supervision.registry.v1");
        }
    }
    pub mod recruitment {
        pub mod v1 {
            tonic::include_proto!("supervision.recruitment.v1");
        }
    }
    pub mod dispatch {
        pub mod v1 {
            tonic::include_proto!("supervision.dispatch.v1");
        }
    }
    pub mod finance {
        pub mod v1 {
            tonic::include_proto!("supervision.finance.v1");
        }
    }
}

pub use supervision::{
    calendar::v1 as calendar, common::v1 as common, dispatch::v1 as dispatch, finance::v1 as finance,
    recruitment::v1 as recruitment, registry::v1 as registry,
};
