//! The registry's rules, free of gRPC and SQL.

/// An enum of fixed values with the stable code each is stored under: the contract's value name
/// without its enum prefix (`EXPERT_CATEGORY_TECHNICIAN` is stored as `TECHNICIAN`), so
/// conversion to and from the contract goes through the name.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stable code stored in the database.
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }
    };
}

pub mod appointment;
pub mod civil_servant;
pub mod expert;
pub mod institution;
pub mod relation;

pub use appointment::{
    Appointment, AppointmentId, AppointmentKind, CertificateStatus, StatusChange, StatusChangeId, StatusGround,
    TermEndReason,
};
pub use civil_servant::{CivilServantEntry, CivilServantPeriod, CivilServantStatus};
pub use expert::{
    BankAccount, Category, CategoryHolding, ChangeId, Condition, ConditionRecord, Contact, DocumentRef, Employer,
    Evidence, Expert, ExpertChange, ExpertFilter, ExpertId, ExpertKind, ExpertStatus, FieldChange, Gender, Locality,
    Organisation, Profile, ProfilePatch, ProfilePath, SkillLevel, Specialty, Visibility,
};
pub use institution::{
    Institution, InstitutionFilter, InstitutionId, InstitutionKind, InstitutionStatus, LegalStanding, NewInstitution,
};
pub use relation::{
    ConflictPath, ConflictReason, InstitutionFamily, ProfileLinks, Relation, RelationId, RelationKind, RelationSource,
};
pub use supervision_kit::credit_code::{CreditCode, CreditCodeError};
