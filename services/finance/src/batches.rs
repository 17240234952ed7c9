//! Use cases of payment batches (issue 8 item 3; D9, D12): drafting a batch from a bureau's open
//! lines of one fund, its transitions, and reading batches. Every write runs in the idempotency
//! claim's transaction with one audit entry; the pure rules are `domain::batch` (transitions and
//! approvals) and `domain::statement` (the withholding of each expert's payment).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::{Any, Transaction};
use supervision_kit::{
    Backend, Bureau, Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_reference::{Reference, ReferenceError};
use tonic::Status;

use crate::{
    domain::{
        Approval, Batch, BatchId, BatchItem, BatchStatus, FeeBasis, MonthSoFar, Refusal, WithholdingRecord, YearMonth,
    },
    error::Error,
    store::batches::{self as sql, BatchFilter},
};

/// What CreatePaymentBatch asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    pub bureau: Bureau,
    pub month: YearMonth,
    /// The contract name of the fund.
    pub fund_source: String,
    /// Lines with work dates from this day (every open line when `None`) ...
    pub from: Option<NaiveDate>,
    /// ... up to this day (the payment month's last day unless a range was given).
    pub to: NaiveDate,
}

/// A transition asked for, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Submit,
    Approve { note: String },
    Reject { reason: String },
    Cancel { reason: String },
    MarkPaid { bank_reference: String, paid_date: NaiveDate },
}

impl Transition {
    fn action(&self) -> &'static str {
        match self {
            Self::Submit => "submit_payment_batch",
            Self::Approve { .. } => "approve_payment_batch",
            Self::Reject { .. } => "reject_payment_batch",
            Self::Cancel { .. } => "cancel_payment_batch",
            Self::MarkPaid { .. } => "mark_payment_batch_paid",
        }
    }
}

fn sql_error(err: sqlx::Error) -> Status {
    Error::from(err).into()
}

/// The month's gross and withholding so far for `expert`, from `settled` batches.
fn so_far(settled: &[Batch], expert: &str) -> MonthSoFar {
    settled.iter().flat_map(|b| &b.items).filter(|i| i.expert_id == expert).fold(MonthSoFar::default(), |m, i| {
        MonthSoFar { gross_fen: m.gross_fen + i.gross_fen, withheld_fen: m.withheld_fen + i.tax_fen }
    })
}

/// The edition's leader-approval threshold for a payment month: the edition in force on its
/// last day.
fn threshold_fen(reference: &Reference, month_end: NaiveDate) -> Result<i64, Status> {
    let edition =
        reference.editions().edition_in_force(month_end).map_err(ReferenceError::from).map_err(Error::from)?;
    Ok(edition.fees.leader_approval_threshold_fen)
}

/// The last day of `month`.
pub fn month_end(month: YearMonth) -> NaiveDate {
    let (year, next) = if month.month == 12 { (month.year + 1, 1) } else { (month.year, month.month + 1) };
    NaiveDate::from_ymd_opt(year, next, 1).and_then(|d| d.pred_opt()).unwrap_or(NaiveDate::MAX)
}

fn summary(batch: &Batch) -> serde_json::Value {
    serde_json::json!({
        "status": batch.status.code(),
        "paying_bureau": batch.bureau.division_code(),
        "payment_month": batch.month.key(),
        "fund_source": batch.fund_source,
        "experts": batch.items.len(),
        "lines": batch.items.iter().map(|i| i.fee_line_ids.len()).sum::<usize>(),
        "total_gross_fen": batch.total_gross_fen(),
        "total_tax_fen": batch.total_tax_fen(),
        "total_net_fen": batch.total_net_fen(),
        "requires_second_approval": batch.requires_second_approval,
        "approvals": batch.approvals.len(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn audit_batch(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    action: &'static str,
    before: Option<&Batch>,
    after: &Batch,
) -> Result<(), Status> {
    let mut after_json = summary(after);
    if let Some(object) = after_json.as_object_mut() {
        if !after.close_reason.is_empty() {
            object.insert("close_reason".into(), after.close_reason.clone().into());
        }
        if !after.bank_reference.is_empty() {
            object.insert("bank_reference".into(), after.bank_reference.clone().into());
            object.insert("paid_date".into(), after.paid_date.map(|d| d.to_string()).into());
        }
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "payment_batch",
        entity_id: after.id.as_str(),
        action,
        before: before.map(summary),
        after: Some(after_json),
    };
    audit::append(tx, backend, clock, caller, change).await.map_err(sql_error)?;
    Ok(())
}

/// Drafts a batch from the bureau's open lines of the fund (charges and reversals alike) and
/// settles each expert's payment against the month's approved and paid batches.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    new: &NewBatch,
) -> Result<Batch, Status> {
    caller.require_bureau(new.bureau)?;
    let threshold = threshold_fen(reference, month_end(new.month))?;
    sql::lock_month(tx, backend, new.bureau, new.month).await.map_err(sql_error)?;
    let id = BatchId::generate();
    let taken = sql::take_open_lines(&mut **tx, &id, new.bureau, &new.fund_source, new.from, new.to)
        .await
        .map_err(sql_error)?;
    if taken == 0 {
        return Err(Error::Refused(Refusal::precondition(
            "NO_OPEN_LINES",
            format!(
                "bureau {} has no open fee lines of {} with work dates up to {}",
                new.bureau.division_code(),
                new.fund_source,
                new.to
            ),
        ))
        .into());
    }
    let mut items: BTreeMap<String, BatchItem> = BTreeMap::new();
    for (line_id, expert, basis, amount) in sql::line_amounts(&mut **tx, &id).await.map_err(sql_error)? {
        let item = items.entry(expert.clone()).or_insert_with(|| BatchItem {
            expert_id: expert,
            fee_line_ids: vec![],
            pre_tax_fen: 0,
            after_tax_net_fen: 0,
            gross_fen: 0,
            tax_fen: 0,
            net_fen: 0,
            withholding: WithholdingRecord {
                income_fen: 0,
                deduction_fen: 0,
                taxable_fen: 0,
                rate_percent: 0,
                quick_deduction_fen: 0,
                tax_due_fen: 0,
                already_withheld_fen: 0,
                withheld_now_fen: 0,
                flat_deduction: true,
            },
        });
        item.fee_line_ids.push(line_id);
        match FeeBasis::from_code(&basis) {
            Some(FeeBasis::AfterTax) => item.after_tax_net_fen += amount,
            _ => item.pre_tax_fen += amount,
        }
    }
    let settled = sql::settled_in_month(&mut **tx, new.bureau, new.month).await?;
    let mut items: Vec<BatchItem> = items.into_values().collect();
    for item in &mut items {
        item.settle(so_far(&settled, &item.expert_id));
    }
    let batch = Batch {
        id,
        bureau: new.bureau,
        month: new.month,
        fund_source: new.fund_source.clone(),
        status: BatchStatus::Draft,
        requires_second_approval: items.iter().map(|i| i.gross_fen).sum::<i64>() > threshold,
        items,
        approvals: vec![],
        prepared_by: caller.actor(),
        created_at: clock.now(),
        submitted_at: None,
        approved_at: None,
        close_reason: String::new(),
        closed_by: None,
        bank_reference: String::new(),
        paid_date: None,
        paid_by: None,
    };
    sql::insert_batch(&mut **tx, &batch).await?;
    audit_batch(tx, backend, clock, caller, command, "create_payment_batch", None, &batch).await?;
    Ok(batch)
}

/// Applies a transition to a batch of the caller's bureau, checking where it stands.
pub async fn transition(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &BatchId,
    step: Transition,
) -> Result<Batch, Status> {
    let before =
        sql::get_batch(&mut **tx, backend, id, true).await?.ok_or_else(|| Error::BatchNotFound(id.to_string()))?;
    caller.require_bureau(before.bureau)?;
    let mut batch = before.clone();
    let now = clock.now();
    let refused = |r: Refusal| -> Status { Error::Refused(r).into() };
    match &step {
        Transition::Submit => {
            batch.require_status(BatchStatus::Draft).map_err(refused)?;
            batch.status = BatchStatus::Submitted;
            batch.submitted_at = Some(now);
        }
        Transition::Approve { note } => {
            let approver = caller.actor();
            let level = batch.approval_by(&approver, caller.role).map_err(refused)?;
            batch.approvals.push(Approval { level, approver, at: now, note: note.clone() });
            if batch.fully_approved() {
                // The withholding is fixed now, against the month's approved and paid batches.
                sql::lock_month(tx, backend, batch.bureau, batch.month).await.map_err(sql_error)?;
                let settled = sql::settled_in_month(&mut **tx, batch.bureau, batch.month).await?;
                for item in &mut batch.items {
                    item.settle(so_far(&settled, &item.expert_id));
                }
                batch.status = BatchStatus::Approved;
                batch.approved_at = Some(now);
            }
        }
        Transition::Reject { reason } | Transition::Cancel { reason } => {
            let from =
                if matches!(step, Transition::Reject { .. }) { BatchStatus::Submitted } else { BatchStatus::Draft };
            batch.require_status(from).map_err(refused)?;
            sql::release_lines(&mut **tx, id).await.map_err(sql_error)?;
            batch.status = if from == BatchStatus::Submitted { BatchStatus::Rejected } else { BatchStatus::Cancelled };
            batch.close_reason = reason.clone();
            batch.closed_by = Some(caller.actor());
        }
        Transition::MarkPaid { bank_reference, paid_date } => {
            batch.require_status(BatchStatus::Approved).map_err(refused)?;
            sql::pay_lines(&mut **tx, id).await.map_err(sql_error)?;
            batch.status = BatchStatus::Paid;
            batch.bank_reference = bank_reference.clone();
            batch.paid_date = Some(*paid_date);
            batch.paid_by = Some(caller.actor());
        }
    }
    sql::update_batch(&mut **tx, &batch).await?;
    audit_batch(tx, backend, clock, caller, command, step.action(), Some(&before), &batch).await?;
    Ok(batch)
}

/// One batch of the caller's bureau (any bureau for city roles and auditors).
pub async fn get(db: &Db, caller: &Caller, id: &BatchId) -> Result<Batch, Status> {
    let batch = sql::get_batch(db.pool(), db.backend(), id, false)
        .await?
        .ok_or_else(|| Error::BatchNotFound(id.to_string()))?;
    caller.require_bureau(batch.bureau)?;
    Ok(batch)
}

/// A page of batches, newest first.
pub async fn list(db: &Db, filter: &BatchFilter, page: &Page) -> Result<(Vec<Batch>, Option<String>), Status> {
    let probe = page.probe();
    let batches = sql::list_batches(db.pool(), filter, probe.after.as_deref(), probe.size).await?;
    Ok(page.finish(batches, |b| b.id.to_string()))
}
