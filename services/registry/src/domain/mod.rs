//! The registry's rules, free of gRPC and SQL.

pub mod credit_code;
pub mod institution;

pub use credit_code::{CreditCode, CreditCodeError};
pub use institution::{
    Institution, InstitutionFilter, InstitutionId, InstitutionKind, InstitutionStatus, LegalStanding, NewInstitution,
};
