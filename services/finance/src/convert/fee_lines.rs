//! proto <-> domain for fee lines and dispatch's revisions.

use std::collections::HashSet;

use chrono::NaiveTime;
use supervision_kit::{
    Bureau, Caller, FieldViolations, Page,
    convert::{date, optional_date, required_date, required_enum, required_text, timestamp},
    error::invalid_field,
    vocab::is_prefixed_id,
};
use supervision_proto::{calendar, common, finance as pb};
use tonic::Status;

use crate::{
    domain::{FeeBasis, FeeLine, FeeLineId, HalfDay, LineKind, LineStatus, Payer, ReversalCause, Rounding, ZeroReason},
    fee_lines::{Outcome, Revision, Scope, Worked, WrongHalfDay},
    store::fee_lines::LineFilter,
};

/// Most sessions one revision may carry: a task runs a few days, two half-days each.
const MAX_SESSIONS: usize = 200;
/// A session is at most a day long.
const MAX_MINUTES: i32 = 24 * 60;

fn id_field(raw: &str, prefix: &str, field: &str, v: &mut FieldViolations) -> String {
    if !is_prefixed_id(raw, prefix) {
        v.add(field, format!("must be an id starting with {prefix}"));
    }
    raw.to_owned()
}

/// The revision a RecordSessions request carries, every problem named by field. The request id
/// must be `<assignment_id>:<revision>`, the contract's key, so a key is one revision.
pub fn revision(req: &pb::RecordSessionsRequest) -> Result<Revision, Status> {
    let mut v = FieldViolations::new();
    let assignment_id = id_field(&req.assignment_id, "asg_", "assignment_id", &mut v);
    let revision = match u32::try_from(req.revision) {
        Ok(r) if r >= 1 => r,
        _ => {
            v.add("revision", "must be 1 or more");
            0
        }
    };
    if req.request_id != format!("{}:{}", req.assignment_id, req.revision) {
        v.add("request_id", "must be the assignment id and the revision joined by a colon");
    }
    let task_id = id_field(&req.task_id, "tsk_", "task_id", &mut v);
    let task_number = required_text(&req.task_number, "task_number", 64, &mut v);
    let expert_id = id_field(&req.expert_id, "exp_", "expert_id", &mut v);
    let paying_bureau = Bureau::from_proto(req.paying_bureau);
    if paying_bureau.is_none() {
        v.add("paying_bureau", "must be a bureau code");
    }
    let fund = required_enum::<common::FundSource>(
        req.fund_source,
        "fund_source",
        "one of the two funds of article 10",
        &mut v,
    );
    if req.sessions.len() > MAX_SESSIONS {
        v.add("sessions", format!("at most {MAX_SESSIONS} sessions"));
    }
    let mut seen = HashSet::new();
    let mut sessions = Vec::new();
    for (i, s) in req.sessions.iter().enumerate() {
        let field = |name: &str| format!("sessions[{i}].{name}");
        let session_id = required_text(&s.task_session_id, &field("task_session_id"), 64, &mut v);
        if !seen.insert(session_id.clone()) {
            v.add(field("task_session_id"), "appears twice");
        }
        let day = required_date(s.date.as_ref(), &field("date"), &mut v);
        let half_day = match common::HalfDay::try_from(s.half_day) {
            Ok(common::HalfDay::Am) => Some(HalfDay::Am),
            Ok(common::HalfDay::Pm) => Some(HalfDay::Pm),
            _ => {
                v.add(field("half_day"), "must be HALF_DAY_AM or HALF_DAY_PM");
                None
            }
        };
        let start = s
            .start_time
            .as_ref()
            .and_then(|t| NaiveTime::from_hms_opt(u32::try_from(t.hours).ok()?, u32::try_from(t.minutes).ok()?, 0));
        if start.is_none() {
            v.add(field("start_time"), "must be a time of day (hours 0 to 23, minutes 0 to 59)");
        }
        if !(0..=MAX_MINUTES).contains(&s.minutes) {
            v.add(field("minutes"), format!("must be 0 to {MAX_MINUTES}"));
        }
        if let (Some(date), Some(half_day), Some(start), Ok(minutes)) = (day, half_day, start, u32::try_from(s.minutes))
        {
            sessions.push(Worked { session_id, date, half_day, start, minutes });
        }
    }
    let void_reason = if req.voided { Some(required_text(&req.void_reason, "void_reason", 500, &mut v)) } else { None };
    v.check()?;
    let (Some(paying_bureau), Some(fund)) = (paying_bureau, fund) else { unreachable!("recorded as violations") };
    Ok(Revision {
        payer: Payer {
            assignment_id,
            task_id,
            task_number,
            expert_id,
            paying_bureau,
            fund_source: fund.as_str_name().to_owned(),
        },
        revision,
        sessions,
        void_reason,
    })
}

/// Sessions whose half-day disagrees with their start time.
pub fn wrong_half_days(wrong: &[WrongHalfDay]) -> Status {
    let mut v = FieldViolations::new();
    for w in wrong {
        v.add(
            format!("sessions[{}].half_day", w.index),
            format!("the start time falls in HALF_DAY_{} under the edition in force", w.expected.code()),
        );
    }
    v.check().err().unwrap_or_else(|| invalid_field("sessions", "half-days disagree with start times"))
}

pub fn outcome_to_proto(outcome: Outcome) -> pb::RecordSessionsResponse {
    pb::RecordSessionsResponse {
        applied: outcome.applied,
        held_revision: i32::try_from(outcome.held_revision).unwrap_or(i32::MAX),
        lines: outcome.lines.into_iter().map(line_to_proto).collect(),
    }
}

fn money(fen: i64) -> Option<common::Money> {
    Some(common::Money { fen })
}

fn small(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

pub fn line_to_proto(l: FeeLine) -> pb::FeeLine {
    use chrono::Timelike;
    pb::FeeLine {
        id: l.id.to_string(),
        revision: i32::try_from(l.revision).unwrap_or(i32::MAX),
        work_date: Some(date(l.work_date)),
        half_day: match l.half_day {
            HalfDay::Am => common::HalfDay::Am,
            HalfDay::Pm => common::HalfDay::Pm,
        } as i32,
        start_time: Some(common::TimeOfDay {
            hours: small(i64::from(l.start.hour())),
            minutes: small(i64::from(l.start.minute())),
        }),
        minutes: small(l.minutes),
        class_hours: small(l.class_hours),
        billable_class_hours: small(l.billable_class_hours),
        rate: money(l.rate_fen),
        basis: match l.basis {
            FeeBasis::PreTax => calendar::FeeBasis::PreTax,
            FeeBasis::AfterTax => calendar::FeeBasis::AfterTax,
        } as i32,
        rounding: match l.rounding {
            Rounding::Floor => calendar::Rounding::Floor,
            Rounding::HalfUp => calendar::Rounding::HalfUp,
        } as i32,
        amount: money(l.amount_fen),
        kind: match l.kind {
            LineKind::Charge => pb::FeeLineKind::Charge,
            LineKind::Reversal => pb::FeeLineKind::Reversal,
        } as i32,
        reverses_line_id: l.reverses.as_ref().map(ToString::to_string).unwrap_or_default(),
        reversal_cause: match l.reversal_cause {
            None => pb::ReversalCause::Unspecified,
            Some(ReversalCause::NewRevision) => pb::ReversalCause::NewRevision,
            Some(ReversalCause::CapReallocation) => pb::ReversalCause::CapReallocation,
        } as i32,
        zero_reason: match l.zero_reason {
            None => pb::ZeroReason::Unspecified,
            Some(ZeroReason::CivilServant) => pb::ZeroReason::CivilServant,
            Some(ZeroReason::ReportVoided) => pb::ZeroReason::ReportVoided,
            Some(ZeroReason::CapExhausted) => pb::ZeroReason::CapExhausted,
            Some(ZeroReason::BelowOneClassHour) => pb::ZeroReason::BelowOneClassHour,
        } as i32,
        zero_detail: l.zero_detail.clone(),
        edition_number: i32::try_from(l.edition_number).unwrap_or(i32::MAX),
        status: status_to_proto(l.status()) as i32,
        payment_batch_id: l.batch_id.clone(),
        create_time: Some(timestamp(l.created_at)),
        paying_bureau: l.payer.paying_bureau.to_proto() as i32,
        fund_source: common::FundSource::from_str_name(&l.payer.fund_source).map_or(0, |f| f as i32),
        assignment_id: l.payer.assignment_id,
        task_id: l.payer.task_id,
        task_number: l.payer.task_number,
        expert_id: l.payer.expert_id,
    }
}

fn status_to_proto(s: LineStatus) -> pb::FeeLineStatus {
    match s {
        LineStatus::Open => pb::FeeLineStatus::Open,
        LineStatus::InBatch => pb::FeeLineStatus::InBatch,
        LineStatus::Paid => pb::FeeLineStatus::Paid,
    }
}

pub fn line_id(req: &pb::GetFeeLineRequest) -> Result<FeeLineId, Status> {
    FeeLineId::parse(&req.id).ok_or_else(|| invalid_field("id", "must be a fee line id (fee_...)"))
}

/// The lines a listing asks for, within the caller's scope: naming another bureau or expert
/// than the caller's own is refused; naming none gives the caller's own.
pub fn line_listing(req: &pb::ListFeeLinesRequest, caller: &Caller) -> Result<(LineFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| FeeLineId::parse(t).is_some(), &mut v);
    let mut filter = LineFilter::default();
    if !req.expert_id.is_empty() {
        filter.expert_id = Some(id_field(&req.expert_id, "exp_", "expert_id", &mut v));
    }
    if !req.assignment_id.is_empty() {
        filter.assignment_id = Some(id_field(&req.assignment_id, "asg_", "assignment_id", &mut v));
    }
    if req.paying_bureau != 0 {
        filter.bureau = Bureau::from_proto(req.paying_bureau);
        if filter.bureau.is_none() {
            v.add("paying_bureau", "is not a bureau code");
        }
    }
    if req.fund_source != 0 {
        filter.fund_source =
            required_enum::<common::FundSource>(req.fund_source, "fund_source", "one of the two funds", &mut v)
                .map(|f| f.as_str_name().to_owned());
    }
    if let Some(range) = &req.work_dates {
        filter.from = optional_date(range.start.as_ref(), "work_dates.start", &mut v);
        filter.to = optional_date(range.end.as_ref(), "work_dates.end", &mut v);
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && to < from
        {
            v.add("work_dates.end", "must not be before work_dates.start");
        }
    }
    if req.status != 0 {
        filter.status =
            required_enum::<pb::FeeLineStatus>(req.status, "status", "a fee line status", &mut v).map(|s| match s {
                pb::FeeLineStatus::Unspecified | pb::FeeLineStatus::Open => LineStatus::Open,
                pb::FeeLineStatus::InBatch => LineStatus::InBatch,
                pb::FeeLineStatus::Paid => LineStatus::Paid,
            });
    }
    if !req.payment_batch_id.is_empty() {
        filter.batch_id = Some(id_field(&req.payment_batch_id, "bat_", "payment_batch_id", &mut v));
    }
    v.check()?;
    match Scope::of(caller) {
        Scope::All => {}
        Scope::Bureau(own) => {
            if let Some(b) = filter.bureau {
                caller.require_bureau(b)?;
            }
            filter.bureau = Some(own);
        }
        Scope::Expert(own) => {
            if filter.expert_id.as_ref().is_some_and(|e| *e != own) {
                return Err(Status::permission_denied("an expert sees only their own fee lines"));
            }
            filter.expert_id = Some(own);
        }
    }
    Ok((filter, page))
}

#[cfg(test)]
mod tests {
    use supervision_kit::Role;
    use tonic_types::StatusExt;

    use super::*;

    const ASSIGNMENT: &str = "asg_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f";

    fn request() -> pb::RecordSessionsRequest {
        pb::RecordSessionsRequest {
            request_id: format!("{ASSIGNMENT}:2"),
            assignment_id: ASSIGNMENT.into(),
            revision: 2,
            task_id: "tsk_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            task_number: "JM-1".into(),
            expert_id: "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            paying_bureau: common::BureauCode::Xinhui as i32,
            fund_source: common::FundSource::CityCountyEmployment as i32,
            sessions: vec![pb::SessionWorked {
                task_session_id: "s1".into(),
                date: Some(common::Date { year: 2026, month: 4, day: 1 }),
                half_day: common::HalfDay::Am as i32,
                start_time: Some(common::TimeOfDay { hours: 9, minutes: 0 }),
                minutes: 165,
            }],
            voided: false,
            void_reason: String::new(),
            event_time: None,
        }
    }

    fn fields(status: &Status) -> Vec<String> {
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_revision_carries_its_payer_and_sessions() {
        let r = revision(&request()).unwrap();
        assert_eq!((r.revision, r.payer.paying_bureau, r.void_reason), (2, Bureau::Xinhui, None));
        assert_eq!(r.payer.fund_source, "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT");
        assert_eq!((r.sessions[0].half_day, r.sessions[0].minutes), (HalfDay::Am, 165));
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut bad = request();
        bad.request_id = "r-1".into();
        bad.fund_source = 0;
        bad.sessions[0].half_day = 0;
        bad.sessions[0].minutes = -1;
        bad.sessions.push(bad.sessions[0].clone());
        bad.voided = true;
        let err = revision(&bad).unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "request_id",
                "fund_source",
                "sessions[0].half_day",
                "sessions[0].minutes",
                "sessions[1].task_session_id",
                "sessions[1].half_day",
                "sessions[1].minutes",
                "void_reason"
            ]
        );
    }

    #[test]
    fn a_bureau_scoped_caller_lists_their_own_bureau_and_an_expert_their_own_lines() {
        let finance = Caller {
            subject: "f".into(),
            role: Role::Finance,
            bureau: Some(Bureau::Heshan),
            expert_id: None,
            acting_for: None,
        };
        let (filter, _) = line_listing(&pb::ListFeeLinesRequest::default(), &finance).unwrap();
        assert_eq!(filter.bureau, Some(Bureau::Heshan));
        let other = pb::ListFeeLinesRequest { paying_bureau: common::BureauCode::Enping as i32, ..Default::default() };
        assert_eq!(line_listing(&other, &finance).unwrap_err().code(), tonic::Code::PermissionDenied);
        let expert = Caller {
            subject: "e".into(),
            role: Role::Expert,
            bureau: None,
            expert_id: Some("exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into()),
            acting_for: None,
        };
        let (filter, _) = line_listing(&pb::ListFeeLinesRequest::default(), &expert).unwrap();
        assert_eq!(filter.expert_id.as_deref(), Some("exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f"));
    }
}
