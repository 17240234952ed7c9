//! Recruitment's rules, free of gRPC and SQL.

pub mod call;

pub use call::{
    Call, CallFilter, CallId, CallStateError, CallStatus, Compliance, NewCall, NewPublication, PUBLICATION_CHANNELS,
    Publication, RequiredMaterial,
};
pub mod application;

pub use application::{
    Application, ApplicationFilter, ApplicationId, ApplicationStateError, ApplicationStatus, Attestation, BankAccount,
    Conclusion, Contact, Material, MaterialId, NewMaterial, Outcome, Profile, ReviewInput, ReviewItem, ReviewItemId,
    ReviewProblem, ReviewTarget, Unmet, Verdict, Visibility,
};
