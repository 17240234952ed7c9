//! proto <-> domain for payment batches and monthly statements.

use supervision_kit::{
    Bureau, Caller, FieldViolations, Page,
    convert::{date, optional_date, optional_text, required_date, required_enum, required_text, timestamp},
    error::invalid_field,
};
use supervision_proto::{common, finance as pb};
use tonic::Status;

use crate::{
    batches::{NewBatch, Transition, month_end},
    domain::{ApprovalLevel, Batch, BatchId, BatchItem, BatchStatus, WithholdingRecord, YearMonth},
    statements::{self, Statement, StatementFilter},
    store::batches::BatchFilter,
};

const MAX_REASON: usize = 500;
const MAX_BANK_REFERENCE: usize = 100;

fn money(fen: i64) -> Option<common::Money> {
    Some(common::Money { fen })
}

pub fn required_month(raw: Option<&common::YearMonth>, field: &str, v: &mut FieldViolations) -> Option<YearMonth> {
    let parsed = raw.and_then(|m| YearMonth::new(m.year, u32::try_from(m.month).ok()?));
    if parsed.is_none() {
        v.add(field, "must be a month (year 2000 to 2199, month 1 to 12)");
    }
    parsed
}

pub fn optional_month(raw: Option<&common::YearMonth>, field: &str, v: &mut FieldViolations) -> Option<YearMonth> {
    match raw {
        None => None,
        Some(m) if *m == common::YearMonth::default() => None,
        Some(m) => required_month(Some(m), field, v),
    }
}

pub fn month_to_proto(m: YearMonth) -> common::YearMonth {
    common::YearMonth { year: m.year, month: i32::try_from(m.month).unwrap_or_default() }
}

pub fn required_bureau(value: i32, field: &str, v: &mut FieldViolations) -> Option<Bureau> {
    let bureau = Bureau::from_proto(value);
    if bureau.is_none() {
        v.add(field, "must be a bureau code");
    }
    bureau
}

fn optional_bureau(value: i32, field: &str, v: &mut FieldViolations) -> Option<Bureau> {
    if value == 0 { None } else { required_bureau(value, field, v) }
}

fn fund(value: i32, field: &str, v: &mut FieldViolations) -> Option<String> {
    required_enum::<common::FundSource>(value, field, "one of the two funds of article 10", v)
        .map(|f| f.as_str_name().to_owned())
}

/// The draft a CreatePaymentBatch asks for.
pub fn new_batch(req: &pb::CreatePaymentBatchRequest) -> Result<NewBatch, Status> {
    let mut v = FieldViolations::new();
    let bureau = required_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let month = required_month(req.payment_month.as_ref(), "payment_month", &mut v);
    let fund_source = fund(req.fund_source, "fund_source", &mut v);
    let (mut from, mut to) = (None, None);
    if let Some(range) = &req.work_dates {
        from = optional_date(range.start.as_ref(), "work_dates.start", &mut v);
        to = optional_date(range.end.as_ref(), "work_dates.end", &mut v);
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            v.add("work_dates.end", "must not be before work_dates.start");
        }
        if let (Some(month), Some(to)) = (month, to)
            && to > month_end(month)
        {
            v.add("work_dates.end", "must not be after the payment month's last day");
        }
    }
    v.check()?;
    let (Some(bureau), Some(month), Some(fund_source)) = (bureau, month, fund_source) else {
        unreachable!("recorded as violations")
    };
    Ok(NewBatch { bureau, month, fund_source, from, to: to.unwrap_or_else(|| month_end(month)) })
}

pub fn batch_id(raw: &str, field: &str) -> Result<BatchId, Status> {
    BatchId::parse(raw).ok_or_else(|| invalid_field(field, "must be a payment batch id (bat_...)"))
}

pub fn approve(req: &pb::ApprovePaymentBatchRequest) -> Result<(BatchId, Transition), Status> {
    let mut v = FieldViolations::new();
    let note = optional_text(&req.note, "note", MAX_REASON, &mut v);
    v.check()?;
    Ok((batch_id(&req.batch_id, "batch_id")?, Transition::Approve { note }))
}

fn reason(raw: &str) -> Result<String, Status> {
    let mut v = FieldViolations::new();
    let reason = required_text(raw, "reason", MAX_REASON, &mut v);
    v.check()?;
    Ok(reason)
}

pub fn reject(req: &pb::RejectPaymentBatchRequest) -> Result<(BatchId, Transition), Status> {
    let reason = reason(&req.reason)?;
    Ok((batch_id(&req.batch_id, "batch_id")?, Transition::Reject { reason }))
}

pub fn cancel(req: &pb::CancelPaymentBatchRequest) -> Result<(BatchId, Transition), Status> {
    let reason = reason(&req.reason)?;
    Ok((batch_id(&req.batch_id, "batch_id")?, Transition::Cancel { reason }))
}

pub fn mark_paid(req: &pb::MarkPaymentBatchPaidRequest) -> Result<(BatchId, Transition), Status> {
    let mut v = FieldViolations::new();
    let bank_reference = required_text(&req.bank_reference, "bank_reference", MAX_BANK_REFERENCE, &mut v);
    let paid_date = required_date(req.paid_date.as_ref(), "paid_date", &mut v);
    v.check()?;
    let Some(paid_date) = paid_date else { unreachable!("recorded as a violation") };
    Ok((batch_id(&req.batch_id, "batch_id")?, Transition::MarkPaid { bank_reference, paid_date }))
}

fn status_from_proto(s: pb::PaymentBatchStatus) -> Option<BatchStatus> {
    match s {
        pb::PaymentBatchStatus::Unspecified => None,
        pb::PaymentBatchStatus::Draft => Some(BatchStatus::Draft),
        pb::PaymentBatchStatus::Submitted => Some(BatchStatus::Submitted),
        pb::PaymentBatchStatus::Approved => Some(BatchStatus::Approved),
        pb::PaymentBatchStatus::Rejected => Some(BatchStatus::Rejected),
        pb::PaymentBatchStatus::Cancelled => Some(BatchStatus::Cancelled),
        pb::PaymentBatchStatus::Paid => Some(BatchStatus::Paid),
    }
}

fn status_to_proto(s: BatchStatus) -> pb::PaymentBatchStatus {
    match s {
        BatchStatus::Draft => pb::PaymentBatchStatus::Draft,
        BatchStatus::Submitted => pb::PaymentBatchStatus::Submitted,
        BatchStatus::Approved => pb::PaymentBatchStatus::Approved,
        BatchStatus::Rejected => pb::PaymentBatchStatus::Rejected,
        BatchStatus::Cancelled => pb::PaymentBatchStatus::Cancelled,
        BatchStatus::Paid => pb::PaymentBatchStatus::Paid,
    }
}

/// The batches a listing asks for; a bureau-scoped caller sees only their own bureau's.
pub fn batch_listing(req: &pb::ListPaymentBatchesRequest, caller: &Caller) -> Result<(BatchFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| BatchId::parse(t).is_some(), &mut v);
    let bureau = optional_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let month = optional_month(req.payment_month.as_ref(), "payment_month", &mut v);
    let status = match req.status {
        0 => None,
        value => required_enum::<pb::PaymentBatchStatus>(value, "status", "a payment batch status", &mut v)
            .and_then(status_from_proto),
    };
    let fund_source = match req.fund_source {
        0 => None,
        value => fund(value, "fund_source", &mut v),
    };
    v.check()?;
    let bureau = match (bureau, caller.role.is_bureau_scoped()) {
        (Some(b), _) => {
            caller.require_bureau(b)?;
            Some(b)
        }
        (None, true) => caller.bureau,
        (None, false) => None,
    };
    Ok((BatchFilter { bureau, month, status, fund_source }, page))
}

pub fn withholding_to_proto(w: &WithholdingRecord) -> pb::Withholding {
    pb::Withholding {
        income: money(w.income_fen),
        deduction: money(w.deduction_fen),
        taxable: money(w.taxable_fen),
        rate_percent: i32::try_from(w.rate_percent).unwrap_or_default(),
        quick_deduction: money(w.quick_deduction_fen),
        tax_due: money(w.tax_due_fen),
        already_withheld: money(w.already_withheld_fen),
        withheld_now: money(w.withheld_now_fen),
    }
}

fn item_to_proto(i: &BatchItem) -> pb::PaymentItem {
    pb::PaymentItem {
        expert_id: i.expert_id.clone(),
        fee_line_ids: i.fee_line_ids.clone(),
        gross: money(i.gross_fen),
        tax: money(i.tax_fen),
        net: money(i.net_fen),
        withholding: Some(withholding_to_proto(&i.withholding)),
    }
}

pub fn batch_to_proto(b: &Batch) -> pb::PaymentBatch {
    pb::PaymentBatch {
        id: b.id.to_string(),
        paying_bureau: b.bureau.to_proto() as i32,
        payment_month: Some(month_to_proto(b.month)),
        fund_source: common::FundSource::from_str_name(&b.fund_source).map_or(0, |f| f as i32),
        status: status_to_proto(b.status) as i32,
        items: b.items.iter().map(item_to_proto).collect(),
        total_gross: money(b.total_gross_fen()),
        total_tax: money(b.total_tax_fen()),
        total_net: money(b.total_net_fen()),
        requires_second_approval: b.requires_second_approval,
        approvals: b
            .approvals
            .iter()
            .map(|a| pb::Approval {
                level: match a.level {
                    ApprovalLevel::Finance => pb::ApprovalLevel::Finance,
                    ApprovalLevel::Second => pb::ApprovalLevel::Second,
                } as i32,
                approver: Some(a.approver.to_proto()),
                approve_time: Some(timestamp(a.at)),
                note: a.note.clone(),
            })
            .collect(),
        prepared_by: Some(b.prepared_by.to_proto()),
        create_time: Some(timestamp(b.created_at)),
        submit_time: b.submitted_at.map(timestamp),
        close_reason: b.close_reason.clone(),
        closed_by: b.closed_by.as_ref().map(|a| a.to_proto()),
        bank_reference: b.bank_reference.clone(),
        paid_date: b.paid_date.map(date),
        paid_by: b.paid_by.as_ref().map(|a| a.to_proto()),
    }
}

/// What GetMonthlyStatement asks for, within the caller's scope.
pub fn statement_request(
    req: &pb::GetMonthlyStatementRequest,
    caller: &Caller,
) -> Result<(String, Bureau, YearMonth), Status> {
    let mut v = FieldViolations::new();
    if !supervision_kit::vocab::is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    let bureau = required_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let month = required_month(req.payment_month.as_ref(), "payment_month", &mut v);
    v.check()?;
    let (Some(bureau), Some(month)) = (bureau, month) else { unreachable!("recorded as violations") };
    caller.require_bureau(bureau)?;
    let expert = statements::scope_expert(caller, Some(req.expert_id.clone()))?.unwrap_or_default();
    Ok((expert, bureau, month))
}

/// The statements a listing asks for, within the caller's scope.
pub fn statement_listing(
    req: &pb::ListMonthlyStatementsRequest,
    caller: &Caller,
) -> Result<(StatementFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", statements::is_key, &mut v);
    let bureau = optional_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let month = optional_month(req.payment_month.as_ref(), "payment_month", &mut v);
    if !req.expert_id.is_empty() && !supervision_kit::vocab::is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    v.check()?;
    let bureau = match (bureau, caller.role.is_bureau_scoped()) {
        (Some(b), _) => {
            caller.require_bureau(b)?;
            Some(b)
        }
        (None, true) => caller.bureau,
        (None, false) => None,
    };
    let expert_id = statements::scope_expert(caller, (!req.expert_id.is_empty()).then(|| req.expert_id.clone()))?;
    Ok((StatementFilter { bureau, month, expert_id }, page))
}

pub fn statement_to_proto(s: Statement) -> pb::MonthlyStatement {
    pb::MonthlyStatement {
        expert_id: s.expert_id,
        paying_bureau: s.bureau.to_proto() as i32,
        payment_month: Some(month_to_proto(s.month)),
        gross: money(s.gross_fen),
        tax: money(s.tax_fen),
        net: money(s.net_fen),
        withholding: Some(withholding_to_proto(&s.withholding)),
        payment_batch_ids: s.batch_ids,
        lines: s.lines.into_iter().map(super::fee_lines::line_to_proto).collect(),
    }
}
