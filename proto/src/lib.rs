//! The gRPC contracts of the supervision system, generated from `proto/supervision/**`.
//!
//! Owns nothing but generated code and the descriptor set; depends on nothing of ours. The
//! `client` and `server` features choose which stubs are generated, so the CLI builds clients only.

/// The encoded `FileDescriptorSet` of every contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod supervision {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("supervision.common.v1");
        }
    }
    pub mod registry {
        pub mod v1 {
            tonic::include_proto!("supervision.registry.v1");
        }
    }
}

pub use supervision::{common::v1 as common, registry::v1 as registry};
