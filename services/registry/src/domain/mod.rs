//! The registry's rules, free of gRPC and SQL.

pub mod institution;

pub use institution::{
    Institution, InstitutionFilter, InstitutionId, InstitutionKind, InstitutionStatus, LegalStanding, NewInstitution,
};
pub use supervision_kit::credit_code::{CreditCode, CreditCodeError};
