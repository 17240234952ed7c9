//! 发放批次 — a payment batch (issue 8 item 3; D9, D12): one paying bureau's open fee lines of
//! one fund, paid in one payment month. DRAFT -> SUBMITTED -> APPROVED -> PAID, or REJECTED (from
//! SUBMITTED) or CANCELLED (from DRAFT), which open its lines again. Approval needs a FINANCE user
//! of the bureau other than the preparer and, when the gross exceeds the edition's
//! `leader_approval_threshold`, a second approval by CITY_ADMIN or the bureau's FINANCE_LEAD.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use supervision_kit::{
    Bureau, Role,
    auth::Actor,
    vocab::{is_prefixed_id, new_prefixed_id},
};

use super::{
    ledger::YearMonth,
    statement::{MonthSoFar, Payment, PaymentAmounts, settle_payment},
    tax::Deduction,
};

/// `bat_` and the 32 hex digits of a UUIDv7, so batches sort in the order drafted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(String);

impl BatchId {
    const PREFIX: &'static str = "bat_";

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

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    Paid,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 6] = [
        BatchStatus::Draft,
        BatchStatus::Submitted,
        BatchStatus::Approved,
        BatchStatus::Rejected,
        BatchStatus::Cancelled,
        BatchStatus::Paid,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Submitted => "SUBMITTED",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
            Self::Paid => "PAID",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Counts towards the month's withholding: approved or paid.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Approved | Self::Paid)
    }
}

/// The withholding of one item, as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithholdingRecord {
    pub income_fen: i64,
    pub deduction_fen: i64,
    pub taxable_fen: i64,
    pub rate_percent: i64,
    pub quick_deduction_fen: i64,
    pub tax_due_fen: i64,
    pub already_withheld_fen: i64,
    pub withheld_now_fen: i64,
    /// True when the deduction is the flat 800 yuan.
    pub flat_deduction: bool,
}

/// One expert's payment in a batch, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub expert_id: String,
    pub fee_line_ids: Vec<String>,
    /// The lines summed by basis, from which the payment is settled (again at approval).
    pub pre_tax_fen: i64,
    pub after_tax_net_fen: i64,
    pub gross_fen: i64,
    pub tax_fen: i64,
    pub net_fen: i64,
    pub withholding: WithholdingRecord,
}

impl BatchItem {
    pub fn amounts(&self) -> PaymentAmounts {
        PaymentAmounts { pre_tax_fen: self.pre_tax_fen, after_tax_net_fen: self.after_tax_net_fen }
    }

    /// Settles the item's lines when the month already holds `so_far` (domain::statement).
    pub fn settle(&mut self, so_far: MonthSoFar) {
        let payment: Payment = settle_payment(so_far, self.amounts());
        let tax = payment.withholding.tax;
        self.gross_fen = payment.gross_fen;
        self.tax_fen = payment.withholding.withheld_now_fen;
        self.net_fen = payment.net_fen;
        self.withholding = WithholdingRecord {
            income_fen: tax.income_fen,
            deduction_fen: tax.deduction_fen(),
            taxable_fen: tax.taxable_fen(),
            rate_percent: tax.band.rate_percent,
            quick_deduction_fen: tax.band.quick_deduction_fen,
            tax_due_fen: tax.tax_due_fen,
            already_withheld_fen: payment.withholding.already_withheld_fen,
            withheld_now_fen: payment.withholding.withheld_now_fen,
            flat_deduction: tax.deduction == Deduction::Flat800,
        };
    }
}

/// Which approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalLevel {
    /// A FINANCE user of the bureau other than the preparer.
    Finance,
    /// Above the threshold: CITY_ADMIN or the bureau's FINANCE_LEAD.
    Second,
}

/// An approval given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub level: ApprovalLevel,
    pub approver: Actor,
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
    pub note: String,
}

/// An instant as the store writes it (chrono's serde support is not enabled).
mod instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    use supervision_kit::storage::{format_instant, parse_instant};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_instant(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        parse_instant(&raw).map_err(serde::de::Error::custom)
    }
}

/// A payment batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: BatchId,
    pub bureau: Bureau,
    pub month: YearMonth,
    pub fund_source: String,
    pub status: BatchStatus,
    pub items: Vec<BatchItem>,
    pub requires_second_approval: bool,
    pub approvals: Vec<Approval>,
    pub prepared_by: Actor,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub close_reason: String,
    pub closed_by: Option<Actor>,
    pub bank_reference: String,
    pub paid_date: Option<NaiveDate>,
    pub paid_by: Option<Actor>,
}

impl Batch {
    pub fn total_gross_fen(&self) -> i64 {
        self.items.iter().map(|i| i.gross_fen).sum()
    }

    pub fn total_tax_fen(&self) -> i64 {
        self.items.iter().map(|i| i.tax_fen).sum()
    }

    pub fn total_net_fen(&self) -> i64 {
        self.items.iter().map(|i| i.net_fen).sum()
    }

    /// Refuses unless the batch is in `expected`, naming where it stands.
    pub fn require_status(&self, expected: BatchStatus) -> Result<(), Refusal> {
        if self.status == expected {
            return Ok(());
        }
        Err(Refusal::precondition(
            "BATCH_WRONG_STATE",
            format!("batch {} is {}, not {}", self.id, self.status.code(), expected.code()),
        ))
    }

    /// The approval level `approver` (of `role`) gives now, or why they may not approve.
    pub fn approval_by(&self, approver: &Actor, role: Role) -> Result<ApprovalLevel, Refusal> {
        self.require_status(BatchStatus::Submitted)?;
        if approver.subject == self.prepared_by.subject {
            return Err(Refusal::denied("PREPARER_CANNOT_APPROVE", "the preparer of a batch may not approve it"));
        }
        if self.approvals.iter().any(|a| a.approver.subject == approver.subject) {
            return Err(Refusal::precondition(
                "ALREADY_APPROVED_BY_CALLER",
                "one person may not give both approvals of a batch",
            ));
        }
        let has = |level| self.approvals.iter().any(|a| a.level == level);
        let second_open = self.requires_second_approval && !has(ApprovalLevel::Second);
        match role {
            Role::Finance if !has(ApprovalLevel::Finance) => Ok(ApprovalLevel::Finance),
            Role::FinanceLead if !has(ApprovalLevel::Finance) => Ok(ApprovalLevel::Finance),
            Role::FinanceLead | Role::CityAdmin if second_open => Ok(ApprovalLevel::Second),
            Role::CityAdmin if !self.requires_second_approval => Err(Refusal::precondition(
                "SECOND_APPROVAL_NOT_REQUIRED",
                "the batch is within the threshold: a FINANCE user of the bureau approves it",
            )),
            _ => {
                Err(Refusal::precondition("APPROVAL_ALREADY_GIVEN", "the approval this role may give is already given"))
            }
        }
    }

    /// True once every approval the batch needs is in.
    pub fn fully_approved(&self) -> bool {
        let has = |level| self.approvals.iter().any(|a| a.level == level);
        has(ApprovalLevel::Finance) && (!self.requires_second_approval || has(ApprovalLevel::Second))
    }
}

/// A refusal of a batch operation: FAILED_PRECONDITION or PERMISSION_DENIED, with a reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub denied: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self { denied: false, reason, message: message.into() }
    }

    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self { denied: true, reason, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(subject: &str, role: Role) -> Actor {
        Actor { subject: subject.into(), role: role.code().into(), bureau: Some("440705".into()) }
    }

    fn batch(requires_second_approval: bool) -> Batch {
        Batch {
            id: BatchId::generate(),
            bureau: Bureau::Xinhui,
            month: YearMonth { year: 2026, month: 4 },
            fund_source: "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT".into(),
            status: BatchStatus::Submitted,
            items: vec![],
            requires_second_approval,
            approvals: vec![],
            prepared_by: actor("preparer", Role::Finance),
            created_at: Utc::now(),
            submitted_at: None,
            approved_at: None,
            close_reason: String::new(),
            closed_by: None,
            bank_reference: String::new(),
            paid_date: None,
            paid_by: None,
        }
    }

    fn approve(b: &mut Batch, subject: &str, role: Role) -> Result<(), Refusal> {
        let who = actor(subject, role);
        let level = b.approval_by(&who, role)?;
        b.approvals.push(Approval { level, approver: who, at: Utc::now(), note: String::new() });
        Ok(())
    }

    #[test]
    fn the_preparer_may_not_approve() {
        let b = batch(false);
        let refusal = b.approval_by(&actor("preparer", Role::Finance), Role::Finance).unwrap_err();
        assert_eq!((refusal.denied, refusal.reason), (true, "PREPARER_CANNOT_APPROVE"));
    }

    #[test]
    fn above_the_threshold_a_second_approval_is_needed() {
        let mut b = batch(true);
        approve(&mut b, "other", Role::Finance).unwrap();
        assert!(!b.fully_approved());
        assert_eq!(approve(&mut b, "third", Role::Finance).unwrap_err().reason, "APPROVAL_ALREADY_GIVEN");
        assert_eq!(approve(&mut b, "other", Role::FinanceLead).unwrap_err().reason, "ALREADY_APPROVED_BY_CALLER");
        approve(&mut b, "lead", Role::FinanceLead).unwrap();
        assert!(b.fully_approved());
    }

    #[test]
    fn within_the_threshold_one_finance_approval_suffices() {
        let mut b = batch(false);
        assert_eq!(approve(&mut b, "admin", Role::CityAdmin).unwrap_err().reason, "SECOND_APPROVAL_NOT_REQUIRED");
        approve(&mut b, "other", Role::Finance).unwrap();
        assert!(b.fully_approved());
    }

    #[test]
    fn a_draft_cannot_be_approved() {
        let b = Batch { status: BatchStatus::Draft, ..batch(false) };
        let refusal = b.approval_by(&actor("other", Role::Finance), Role::Finance).unwrap_err();
        assert_eq!(refusal.reason, "BATCH_WRONG_STATE");
        assert!(refusal.message.contains("DRAFT"));
    }
}
