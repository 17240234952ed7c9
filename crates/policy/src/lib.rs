//! Effective-dated editions of the Jiangmen supervision-expert policy (D6).
//!
//! Owns every parameter the system reads from the policy (DOMAIN.md section 17 as amended by
//! D1-D21), typed; edition 1, the policy as issued (江人社发〔2022〕1号, in force 2022-02-15 to
//! 2027-02-14), shipped in `editions/edition-1.toml`; the overlay directory through which
//! operators load a successor edition without a rebuild; and [`Editions::edition_in_force`], the
//! one place that answers which rules apply on a date.
//!
//! Pure library: it reads its data directory once at load and has no clock (callers pass today).
//! It must not depend on any service, storage or gRPC crate, nor on the working-day calendar:
//! callers combine an edition's day counts with `supervision-calendar` themselves.

mod edition;
mod editions;
mod error;
mod validate;

pub use edition::{
    AppointmentRules, DayCount, DispatchRules, Edition, ExclusionRules, FeeBasis, FeeRules, FundSource, MeetingRules,
    MonthDay, QualityCardRule, RandomPlanRules, RecordRules, ReportRules, RetirementRules, Rounding, SessionRules,
    ValidityRules,
};
pub use editions::Editions;
pub use error::{EditionError, EditionRef, EditionWarning, NoEditionInForce};
