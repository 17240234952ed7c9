//! The registry's errors and their one mapping to gRPC statuses.

use std::collections::HashMap;

use supervision_reference::ReferenceError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::store::StoreError;

/// The `ErrorInfo.domain` of the registry's refusals.
const DOMAIN: &str = "supervision.registry.v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("institution {0} not found")]
    InstitutionNotFound(String),
    #[error("parent institution {0} not found")]
    ParentNotFound(String),
    #[error("parent institution {0} is itself a sub-unit")]
    ParentIsSubUnit(String),
    #[error("an institution with credit code {0} is already registered")]
    CreditCodeTaken(String),
    /// Also for an id the caller may not see (an EXPERT asking for another expert).
    #[error("expert {0} not found")]
    ExpertNotFound(String),
    /// The message never names the document: it is personal data.
    #[error("expert {0} already holds this identity document")]
    IdentityTaken(String),
    #[error("the expert is at revision {actual}, not the expected {expected}; read it again and retry")]
    RevisionMismatch { expected: i64, actual: i64 },
    #[error(
        "appointments made before this system are recorded with the appointments part of the registry; \
         create the expert without existing_appointment"
    )]
    ExistingAppointmentUnsupported,
    #[error("appointment {0} not found")]
    AppointmentNotFound(String),
    #[error("an expert who is {status} cannot be {ground}")]
    TransitionRefused { status: &'static str, ground: &'static str },
    #[error("the expert holds no running term to {0}")]
    NoRunningTerm(&'static str),
    #[error("renewal opens on {opens} and closes when the term ends on {ends}; the decision is dated {decided}")]
    OutsideRenewalWindow { opens: String, ends: String, decided: String },
    #[error("{0}")]
    ReplacementRefused(String),
    #[error("relation {0} not found")]
    RelationNotFound(String),
    /// Ending a relation already ended, or touching one recorded in error.
    #[error("relation {0} is already ended or recorded in error")]
    RelationClosed(String),
    /// Also for an incident the caller may not see.
    #[error("incident {0} not found")]
    IncidentNotFound(String),
    #[error("incident {0} is already decided")]
    IncidentDecided(String),
    #[error("incident {0} is not a decided, substantiated (查实) incident of this expert")]
    IncidentNotSubstantiated(String),
    #[error("retirement proposal {0} not found")]
    ProposalNotFound(String),
    #[error("retirement proposal {0} is no longer pending")]
    ProposalNotPending(String),
    #[error("no civil-servant status is recorded for {date}: the history starts on {first}")]
    NoCivilServantStatus { date: String, first: String },
    /// Problems found once stored data is known (a merged profile, an institution id), as
    /// (field path, problem).
    #[error("invalid request")]
    Invalid(Vec<(String, String)>),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(err))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InstitutionNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Institution", id, "", ""),
            ),
            Error::ParentNotFound(_) => {
                let mut v = supervision_kit::FieldViolations::new();
                v.add("parent_id", "names no registered institution");
                v.check().expect_err("a violation was added")
            }
            Error::ParentIsSubUnit(_) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "SUB_UNIT_PARENT",
                    "parent_id",
                    "a sub-unit's parent must be a legal entity with a credit code",
                ),
            ),
            Error::CreditCodeTaken(_) => Status::with_error_details(
                Code::AlreadyExists,
                message,
                ErrorDetails::with_error_info("CREDIT_CODE_TAKEN", DOMAIN, []),
            ),
            Error::ExpertNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Expert", id, "", ""),
            ),
            Error::IdentityTaken(holder) => Status::with_error_details(
                Code::AlreadyExists,
                message,
                ErrorDetails::with_error_info(
                    "IDENTITY_DOCUMENT_TAKEN",
                    DOMAIN,
                    HashMap::from([("expert_id".to_owned(), holder)]),
                ),
            ),
            Error::RevisionMismatch { expected, actual } => Status::with_error_details(
                Code::Aborted,
                message,
                ErrorDetails::with_error_info(
                    "REVISION_MISMATCH",
                    DOMAIN,
                    HashMap::from([
                        ("expected_revision".to_owned(), expected.to_string()),
                        ("revision".to_owned(), actual.to_string()),
                    ]),
                ),
            ),
            Error::ExistingAppointmentUnsupported => {
                let mut details = ErrorDetails::new();
                details.set_error_info("EXISTING_APPOINTMENT_UNSUPPORTED", DOMAIN, HashMap::new());
                details.add_precondition_failure_violation(
                    "EXISTING_APPOINTMENT_UNSUPPORTED",
                    "existing_appointment",
                    "not accepted until appointments and terms are recorded in the registry (issue 5)",
                );
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            Error::AppointmentNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Appointment", id, "", ""),
            ),
            Error::TransitionRefused { status, ground } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "STATUS_TRANSITION_NOT_ALLOWED",
                    DOMAIN,
                    HashMap::from([("status".to_owned(), status.to_owned()), ("ground".to_owned(), ground.to_owned())]),
                ),
            ),
            Error::NoRunningTerm(_) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info("NO_RUNNING_TERM", DOMAIN, HashMap::new()),
            ),
            Error::OutsideRenewalWindow { opens, ends, .. } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "OUTSIDE_RENEWAL_WINDOW",
                    DOMAIN,
                    HashMap::from([("opens".to_owned(), opens), ("term_end".to_owned(), ends)]),
                ),
            ),
            Error::ReplacementRefused(_) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info("REPRESENTATIVE_REPLACEMENT_REFUSED", DOMAIN, HashMap::new()),
            ),
            Error::RelationNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Relation", id, "", ""),
            ),
            Error::RelationClosed(id) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "RELATION_ALREADY_ENDED",
                    DOMAIN,
                    HashMap::from([("relation_id".to_owned(), id)]),
                ),
            ),
            Error::IncidentNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Incident", id, "", ""),
            ),
            Error::IncidentDecided(id) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "INCIDENT_ALREADY_DECIDED",
                    DOMAIN,
                    HashMap::from([("incident_id".to_owned(), id)]),
                ),
            ),
            Error::IncidentNotSubstantiated(id) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "INCIDENT_NOT_SUBSTANTIATED",
                    DOMAIN,
                    HashMap::from([("incident_id".to_owned(), id)]),
                ),
            ),
            Error::ProposalNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.RetirementProposal", id, "", ""),
            ),
            Error::ProposalNotPending(id) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "PROPOSAL_NOT_PENDING",
                    DOMAIN,
                    HashMap::from([("proposal_id".to_owned(), id)]),
                ),
            ),
            Error::NoCivilServantStatus { date, first } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "NO_CIVIL_SERVANT_STATUS",
                    DOMAIN,
                    HashMap::from([("date".to_owned(), date), ("history_starts".to_owned(), first)]),
                ),
            ),
            Error::Invalid(problems) => {
                let mut v = supervision_kit::FieldViolations::new();
                for (field, problem) in problems {
                    v.add(field, problem);
                }
                v.check().err().unwrap_or_else(|| Status::invalid_argument("invalid request"))
            }
            Error::Reference(err) => err.into(),
            // A database that does not answer (or is restarting) is UNAVAILABLE: retry later.
            Error::Store(StoreError::Sql(err)) => supervision_kit::error::database(&err),
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}
