//! 劳务费明细 — a fee line as finance keeps it: a charge for one session, or the exact negative
//! of an earlier line. Lines are only ever added (ARCHITECTURE.md "Fees"); a line is live while
//! no reversal points at it.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use supervision_kit::{
    Bureau,
    vocab::{is_prefixed_id, new_prefixed_id},
};

use super::{
    cap::SlotSession,
    fees::{FeeBasis, FeeRules, ZeroReason},
    hours::{HalfDay, Rounding},
    slot::{HeldLine, ReversalCause},
};

/// `fee_` and the 32 hex digits of a UUIDv7, so lines sort in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeeLineId(String);

impl FeeLineId {
    const PREFIX: &'static str = "fee_";

    pub fn generate() -> Self {
        Self(new_prefixed_id(Self::PREFIX))
    }

    pub fn parse(s: &str) -> Option<Self> {
        is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeeLineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A charge, or a reversal of an earlier line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Charge,
    Reversal,
}

impl LineKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Reversal => "REVERSAL",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "CHARGE" => Some(Self::Charge),
            "REVERSAL" => Some(Self::Reversal),
            _ => None,
        }
    }
}

/// The contract name of a reversal cause without its prefix, read back.
pub fn reversal_cause_from_code(code: &str) -> Option<ReversalCause> {
    [ReversalCause::NewRevision, ReversalCause::CapReallocation].into_iter().find(|c| c.code() == code)
}

/// One expert's half-day (D2): the unit the cap of article 10 applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotKey {
    pub expert_id: String,
    pub date: NaiveDate,
    pub half_day: HalfDay,
}

/// Who a line is charged to: the assignment, its task, its expert, its payer and fund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    pub assignment_id: String,
    pub task_id: String,
    pub task_number: String,
    pub expert_id: String,
    pub paying_bureau: Bureau,
    /// The contract name (`FUND_SOURCE_CITY_COUNTY_EMPLOYMENT`, ...).
    pub fund_source: String,
}

/// Where a line stands in payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    Open,
    InBatch,
    Paid,
}

/// One fee line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    pub id: FeeLineId,
    pub payer: Payer,
    /// The assignment's revision it was charged under (a reversal: the reversed line's).
    pub revision: u32,
    pub work_date: NaiveDate,
    pub half_day: HalfDay,
    /// Dispatch's task session id.
    pub session_id: String,
    pub start: NaiveTime,
    /// Negative on a reversal, as every figure below but the rate.
    pub minutes: i64,
    pub class_hours: i64,
    pub billable_class_hours: i64,
    pub rate_fen: i64,
    pub basis: FeeBasis,
    pub rounding: Rounding,
    pub amount_fen: i64,
    pub kind: LineKind,
    pub reverses: Option<FeeLineId>,
    pub reversal_cause: Option<ReversalCause>,
    pub zero_reason: Option<ZeroReason>,
    pub zero_detail: String,
    pub edition_number: u32,
    pub batch_id: String,
    /// Paid in `batch_id`: never changed again.
    pub paid: bool,
    pub created_at: DateTime<Utc>,
}

impl FeeLine {
    pub fn slot(&self) -> SlotKey {
        SlotKey { expert_id: self.payer.expert_id.clone(), date: self.work_date, half_day: self.half_day }
    }

    /// A line in no live batch is open, one in a live batch is in it, one in a paid batch paid.
    pub fn status(&self) -> LineStatus {
        if self.paid {
            LineStatus::Paid
        } else if self.batch_id.is_empty() {
            LineStatus::Open
        } else {
            LineStatus::InBatch
        }
    }

    /// The exact negative of this line, pointing at it.
    pub fn reversal(&self, cause: ReversalCause, at: DateTime<Utc>) -> FeeLine {
        FeeLine {
            id: FeeLineId::generate(),
            minutes: -self.minutes,
            class_hours: -self.class_hours,
            billable_class_hours: -self.billable_class_hours,
            amount_fen: -self.amount_fen,
            kind: LineKind::Reversal,
            reverses: Some(self.id.clone()),
            reversal_cause: Some(cause),
            zero_reason: None,
            zero_detail: String::new(),
            batch_id: String::new(),
            paid: false,
            created_at: at,
            ..self.clone()
        }
    }

    /// The live charge as the slot rules see it. A voided report's line carries its void reason
    /// as the zero detail, so the session is rebuilt exactly as it was charged.
    pub fn held(&self) -> HeldLine {
        HeldLine {
            line_id: self.id.to_string(),
            revision: self.revision,
            session: SlotSession {
                assignment_id: self.payer.assignment_id.clone(),
                session_id: self.session_id.clone(),
                start: self.start,
                minutes: u32::try_from(self.minutes).unwrap_or(0),
                void_reason: (self.zero_reason == Some(ZeroReason::ReportVoided)).then(|| self.zero_detail.clone()),
            },
            billable_class_hours: u32::try_from(self.billable_class_hours).unwrap_or(0),
            amount_fen: self.amount_fen,
        }
    }
}

/// The fee rules of a policy edition, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditionFees {
    pub number: u32,
    pub rules: FeeRules,
    /// AM before this time, PM from it (D2).
    pub half_day_split: NaiveTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> FeeLine {
        FeeLine {
            id: FeeLineId::generate(),
            payer: Payer {
                assignment_id: "asg_a".into(),
                task_id: "tsk_a".into(),
                task_number: "T-1".into(),
                expert_id: "exp_a".into(),
                paying_bureau: Bureau::Xinhui,
                fund_source: "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT".into(),
            },
            revision: 2,
            work_date: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
            half_day: HalfDay::Am,
            session_id: "s1".into(),
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            minutes: 165,
            class_hours: 3,
            billable_class_hours: 3,
            rate_fen: 10_000,
            basis: FeeBasis::PreTax,
            rounding: Rounding::Floor,
            amount_fen: 30_000,
            kind: LineKind::Charge,
            reverses: None,
            reversal_cause: None,
            zero_reason: None,
            zero_detail: String::new(),
            edition_number: 1,
            batch_id: String::new(),
            paid: false,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_reversal_is_the_exact_negative_of_its_line_and_points_at_it() {
        let charge = line();
        let reversal = charge.reversal(ReversalCause::NewRevision, DateTime::UNIX_EPOCH);
        assert_eq!((reversal.minutes, reversal.billable_class_hours, reversal.amount_fen), (-165, -3, -30_000));
        assert_eq!((reversal.rate_fen, reversal.revision), (10_000, 2));
        assert_eq!(reversal.reverses.as_ref(), Some(&charge.id));
        assert_eq!(reversal.kind, LineKind::Reversal);
        assert_ne!(reversal.id, charge.id);
    }

    #[test]
    fn a_voided_line_is_held_with_its_void_reason() {
        let voided = FeeLine {
            zero_reason: Some(ZeroReason::ReportVoided),
            zero_detail: "9(八)".into(),
            amount_fen: 0,
            ..line()
        };
        assert_eq!(voided.held().session.void_reason.as_deref(), Some("9(八)"));
        assert_eq!(line().held().session.void_reason, None);
    }

    #[test]
    fn codes_round_trip() {
        for k in [LineKind::Charge, LineKind::Reversal] {
            assert_eq!(LineKind::from_code(k.code()), Some(k));
        }
        for c in [ReversalCause::NewRevision, ReversalCause::CapReallocation] {
            assert_eq!(reversal_cause_from_code(c.code()), Some(c));
        }
        assert!(FeeLineId::parse(FeeLineId::generate().as_str()).is_some());
        assert!(FeeLineId::parse("xpt_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f").is_none());
    }
}
