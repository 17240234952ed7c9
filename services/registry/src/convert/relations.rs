//! proto <-> domain for relations, conflicts and the draw pool. Every problem with a request
//! becomes a field violation naming the field by its path in the request.

use chrono::{DateTime, NaiveDate, Utc};
use supervision_kit::{
    FieldViolations, Page,
    convert::{date, long_text, on_behalf, optional_date, optional_text, required_date, required_time, timestamp},
    vocab::{OnBehalf, is_prefixed_id},
};
use supervision_proto::{common, registry as pb};
use tonic::Status;

use super::{
    appointments::{date_range, expert_status_to_proto, status_change_to_proto},
    experts::{
        contract_value, evidence, evidence_to_proto, organisation, organisation_is_empty, organisation_to_proto,
        required_coded,
    },
};
use crate::{
    domain::{
        ConflictReason, Evidence, ExpertId, InstitutionId, Organisation, Relation, RelationId, RelationKind,
        RelationSource,
    },
    store::relations::RelationFilter,
};

const MAX_PERSON_CHARS: usize = 100;
const MAX_NOTE_CHARS: usize = 1000;
/// Session dates of one task a pool may be asked for.
const MAX_SESSION_DATES: usize = 366;
/// Experts one QueryConflicts (or one StreamDrawPool) may name.
const MAX_EXPERT_IDS: usize = 1000;

/// What a relation names: a registered institution, or an organisation that is not.
#[derive(Debug, Clone)]
pub enum Counterparty {
    Institution(InstitutionId),
    Organisation(Organisation),
}

/// A validated RecordRelation (or RecordConflict) request.
#[derive(Debug, Clone)]
pub struct NewRelation {
    pub expert_id: ExpertId,
    pub kind: RelationKind,
    pub counterparty: Counterparty,
    pub counterpart_name: String,
    pub counterpart_role: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    pub source: RelationSource,
    pub source_ref: String,
    pub evidence: Evidence,
    pub note: String,
    pub on_behalf: Option<OnBehalf>,
}

/// A validated EndRelation request.
#[derive(Debug, Clone)]
pub struct RelationEnd {
    pub relation_id: RelationId,
    /// The last day it held; `None` when marked in error.
    pub end: Option<NaiveDate>,
    pub in_error: bool,
    pub reason: String,
}

/// A validated QueryConflicts request.
#[derive(Debug, Clone)]
pub struct ConflictQuery {
    pub institution_id: InstitutionId,
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub expert_ids: Vec<ExpertId>,
    pub page: Page,
}

/// The longest sync version accepted back: a PostgreSQL snapshot names every transaction in
/// progress when it was read, which even a busy registry keeps far below this.
pub const MAX_VERSION_LEN: usize = 64 * 1024;

/// A validated StreamDrawPool request.
#[derive(Debug, Clone)]
pub struct PoolRequest {
    pub institution_id: InstitutionId,
    /// Sorted, without repeats.
    pub session_dates: Vec<NaiveDate>,
    pub task_id: String,
    /// Only these experts when not empty (sorted, without repeats); otherwise the whole pool.
    pub expert_ids: Vec<ExpertId>,
    /// A sync read, since this version (empty for the whole pool).
    pub sync: Option<String>,
}

fn expert_field(raw: &str, field: &str, v: &mut FieldViolations) -> Option<ExpertId> {
    let id = ExpertId::parse(raw.trim());
    if id.is_none() {
        v.add(field, "is not an expert id (exp_...)");
    }
    id
}

fn institution_field(raw: &str, field: &str, v: &mut FieldViolations) -> Option<InstitutionId> {
    let id = InstitutionId::parse(raw.trim());
    if id.is_none() {
        v.add(field, "is not an institution id (ins_...)");
    }
    id
}

fn prefixed(raw: &str, prefix: &str, field: &str, what: &str, v: &mut FieldViolations) -> String {
    let raw = raw.trim();
    if !is_prefixed_id(raw, prefix) {
        v.add(field, format!("is not {what} id ({prefix}...)"));
    }
    raw.to_owned()
}

fn relation_kind(value: i32, field: &str, v: &mut FieldViolations) -> Option<RelationKind> {
    required_coded(
        value,
        field,
        "a relation type",
        "RELATION_TYPE_",
        |p: common::RelationType| p.as_str_name(),
        RelationKind::from_code,
        v,
    )
}

/// RecordRelation. The expert declares their own relations (source SELF_DECLARED, no
/// `on_behalf`); staff name the source, and give `on_behalf` when they enter what the expert
/// declared (D16). Recusals arrive only through RecordConflict. Employment has dates: a past
/// employment its last day, a current one none.
pub fn new_relation(
    req: &pb::RecordRelationRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
    by_the_expert: bool,
) -> Result<NewRelation, Status> {
    let mut v = FieldViolations::new();
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let kind = relation_kind(req.r#type, "type", &mut v);
    let counterparty = counterparty(&req.institution_id, req.organisation.as_ref(), &mut v);
    let counterpart_name = optional_text(&req.counterpart_name, "counterpart_name", MAX_PERSON_CHARS, &mut v);
    let counterpart_role = optional_text(&req.counterpart_role, "counterpart_role", MAX_PERSON_CHARS, &mut v);
    if kind.is_some_and(RelationKind::is_with_a_person) && counterpart_name.is_empty() {
        v.add("counterpart_name", "is required for a relation with a person at the institution");
    }
    let (valid_from, valid_to) = date_range(req.valid.as_ref(), "valid", &mut v);
    if valid_from.is_some_and(|d| d > today) {
        v.add("valid.start", "must not be in the future: record a relation once it holds");
    }
    match kind {
        Some(RelationKind::PastEmployment) if valid_to.is_none() => {
            v.add("valid.end", "is required: a past employment ends on its last day (the look-back runs from it)");
        }
        Some(RelationKind::CurrentEmployment) if valid_to.is_some() => {
            v.add("valid.end", "must be empty for a current employment; record PAST_EMPLOYMENT or end it later");
        }
        _ => {}
    }
    let source = if req.source == 0 && by_the_expert {
        Some(RelationSource::SelfDeclared)
    } else {
        required_coded(
            req.source,
            "source",
            "SELF_DECLARED, BUREAU, INSTITUTION or IMPORT",
            "RELATION_SOURCE_",
            |p: pb::RelationSource| p.as_str_name(),
            RelationSource::from_code,
            &mut v,
        )
    };
    match source {
        Some(RelationSource::Recusal) => v.add("source", "recusals are recorded by dispatch through RecordConflict"),
        Some(s) if by_the_expert && s != RelationSource::SelfDeclared => {
            v.add("source", "an expert records what they declare themself: SELF_DECLARED")
        }
        _ => {}
    }
    let evidence = evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    let note = long_text(&req.note, "note", MAX_NOTE_CHARS, false, &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    match (by_the_expert, &on_behalf, source) {
        (true, Some(_), _) => v.add("on_behalf", "is for staff entering what the expert declared; leave it empty"),
        (false, None, Some(RelationSource::SelfDeclared)) => {
            v.add("on_behalf", "is required: say how the expert's declaration reached the bureau (D16)")
        }
        _ => {}
    }
    v.check()?;
    Ok(NewRelation {
        expert_id: expert_id.expect("checked above"),
        kind: kind.expect("checked above"),
        counterparty: counterparty.expect("checked above"),
        counterpart_name,
        counterpart_role,
        valid_from,
        valid_to,
        source: source.expect("checked above"),
        source_ref: String::new(),
        evidence,
        note,
        on_behalf,
    })
}

fn counterparty(
    institution_id: &str,
    organisation_raw: Option<&common::Organisation>,
    v: &mut FieldViolations,
) -> Option<Counterparty> {
    let organisation_raw = organisation_raw.filter(|o| !organisation_is_empty(o));
    match (institution_id.trim().is_empty(), organisation_raw) {
        (false, None) => institution_field(institution_id, "institution_id", v).map(Counterparty::Institution),
        (true, Some(raw)) if !raw.institution_id.trim().is_empty() => {
            institution_field(&raw.institution_id, "organisation.institution_id", v).map(Counterparty::Institution)
        }
        (true, Some(raw)) => Some(Counterparty::Organisation(organisation(raw, "organisation", v))),
        (true, None) => {
            v.add("institution_id", "name the institution, or the organisation when it is not registered");
            None
        }
        (false, Some(_)) => {
            v.add("organisation", "give either institution_id or organisation, not both");
            None
        }
    }
}

/// EndRelation: a last day and a reason, or the mark "recorded in error" and a reason.
pub fn relation_end(req: &pb::EndRelationRequest) -> Result<RelationEnd, Status> {
    let mut v = FieldViolations::new();
    let relation_id = RelationId::parse(req.relation_id.trim());
    if relation_id.is_none() {
        v.add("relation_id", "is not a relation id (rel_...)");
    }
    let end = if req.recorded_in_error { None } else { required_date(req.end_date.as_ref(), "end_date", &mut v) };
    let reason = long_text(&req.reason, "reason", MAX_NOTE_CHARS, true, &mut v);
    v.check()?;
    Ok(RelationEnd { relation_id: relation_id.expect("checked above"), end, in_error: req.recorded_in_error, reason })
}

pub fn relation_listing(req: &pb::ListRelationsRequest) -> Result<(RelationFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| RelationId::parse(t).is_some(), &mut v);
    let expert_id = (!req.expert_id.trim().is_empty()).then(|| expert_field(&req.expert_id, "expert_id", &mut v));
    let institution_id = (!req.institution_id.trim().is_empty())
        .then(|| institution_field(&req.institution_id, "institution_id", &mut v));
    if expert_id.is_none() && institution_id.is_none() {
        v.add("expert_id", "give expert_id, institution_id or both");
    }
    let kind = (req.r#type != 0).then(|| relation_kind(req.r#type, "type", &mut v));
    v.check()?;
    Ok((
        RelationFilter {
            expert_id: expert_id.flatten(),
            institution_id: institution_id.flatten(),
            kind: kind.flatten(),
            include_ended: req.include_ended,
        },
        page,
    ))
}

/// RecordConflict from dispatch: keyed by the assignment (`request_id` is the assignment id);
/// the relation declared (DECLARED_CONFLICT when not said), source RECUSAL, open-ended from a
/// start not known.
pub fn recusal(req: &pb::RecordConflictRequest, now: DateTime<Utc>) -> Result<NewRelation, Status> {
    let mut v = FieldViolations::new();
    let assignment_id = prefixed(&req.assignment_id, "asg_", "assignment_id", "an assignment", &mut v);
    if req.request_id != req.assignment_id {
        v.add("request_id", "must be the assignment id (dispatch's idempotency key)");
    }
    let task_id = prefixed(&req.task_id, "tsk_", "task_id", "a task", &mut v);
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let institution_id = institution_field(&req.institution_id, "institution_id", &mut v);
    let kind = if req.relation_type == 0 {
        Some(RelationKind::DeclaredConflict)
    } else {
        relation_kind(req.relation_type, "relation_type", &mut v)
    };
    let detail = long_text(&req.detail, "detail", MAX_NOTE_CHARS, false, &mut v);
    let declared = required_time(req.declared_time.as_ref(), "declared_time", &mut v);
    if declared.is_some_and(|t| t > now) {
        v.add("declared_time", "must not be in the future");
    }
    v.check()?;
    let declared = declared.expect("checked above");
    Ok(NewRelation {
        expert_id: expert_id.expect("checked above"),
        kind: kind.expect("checked above"),
        counterparty: Counterparty::Institution(institution_id.expect("checked above")),
        counterpart_name: String::new(),
        counterpart_role: String::new(),
        valid_from: None,
        valid_to: None,
        source: RelationSource::Recusal,
        source_ref: assignment_id.clone(),
        evidence: Evidence {
            description: format!(
                "recusal from assignment {assignment_id} of task {task_id}, received {}",
                supervision_kit::storage::format_instant(declared)
            ),
            documents: Vec::new(),
        },
        note: detail,
        on_behalf: None,
    })
}

pub fn conflict_query(req: &pb::QueryConflictsRequest) -> Result<ConflictQuery, Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| ExpertId::parse(t).is_some(), &mut v);
    let institution_id = institution_field(&req.institution_id, "institution_id", &mut v);
    let (first, last) = match &req.dates {
        None => {
            v.add("dates", "is required: the dates considered (the task's first to last session)");
            (None, None)
        }
        Some(range) => {
            let first = required_date(range.start.as_ref(), "dates.start", &mut v);
            let last = optional_date(range.end.as_ref(), "dates.end", &mut v).or(first);
            if let (Some(f), Some(l)) = (first, last)
                && f > l
            {
                v.add("dates", "start must not be after end");
            }
            (first, last)
        }
    };
    if req.expert_ids.len() > MAX_EXPERT_IDS {
        v.add("expert_ids", format!("at most {MAX_EXPERT_IDS}"));
    }
    let expert_ids: Vec<ExpertId> = req
        .expert_ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| expert_field(raw, &format!("expert_ids[{i}]"), &mut v))
        .collect();
    v.check()?;
    Ok(ConflictQuery {
        institution_id: institution_id.expect("checked above"),
        first: first.expect("checked above"),
        last: last.expect("checked above"),
        expert_ids,
        page,
    })
}

pub fn pool_request(req: &pb::StreamDrawPoolRequest) -> Result<PoolRequest, Status> {
    let mut v = FieldViolations::new();
    let institution_id = institution_field(&req.institution_id, "institution_id", &mut v);
    if req.session_dates.is_empty() {
        v.add("session_dates", "is required: every session date of the task");
    }
    if req.session_dates.len() > MAX_SESSION_DATES {
        v.add("session_dates", format!("at most {MAX_SESSION_DATES}"));
    }
    let mut session_dates: Vec<NaiveDate> = req
        .session_dates
        .iter()
        .enumerate()
        .filter_map(|(i, d)| required_date(Some(d), &format!("session_dates[{i}]"), &mut v))
        .collect();
    session_dates.sort_unstable();
    session_dates.dedup();
    let task_id = prefixed(&req.task_id, "tsk_", "task_id", "a task", &mut v);
    if req.expert_ids.len() > MAX_EXPERT_IDS {
        v.add("expert_ids", format!("at most {MAX_EXPERT_IDS}"));
    }
    let mut expert_ids: Vec<ExpertId> = req
        .expert_ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| expert_field(raw, &format!("expert_ids[{i}]"), &mut v))
        .collect();
    expert_ids.sort_unstable();
    expert_ids.dedup();
    if req.sync && !req.expert_ids.is_empty() {
        v.add("expert_ids", "must be empty for a sync read");
    }
    if !req.sync && !req.since_version.is_empty() {
        v.add("since_version", "is only for a sync read");
    }
    if req.since_version.len() > MAX_VERSION_LEN {
        v.add("since_version", format!("at most {MAX_VERSION_LEN} characters"));
    }
    v.check()?;
    Ok(PoolRequest {
        institution_id: institution_id.expect("checked above"),
        session_dates,
        task_id,
        expert_ids,
        sync: req.sync.then(|| req.since_version.clone()),
    })
}

// ------------------------------------------------------------------------------------------
// domain -> proto
// ------------------------------------------------------------------------------------------

pub fn relation_kind_to_proto(k: RelationKind) -> i32 {
    contract_value("RELATION_TYPE_", k.code(), common::RelationType::from_str_name)
}

pub fn relation_to_proto(r: &Relation) -> pb::Relation {
    pb::Relation {
        id: r.id.to_string(),
        expert_id: r.expert_id.to_string(),
        r#type: relation_kind_to_proto(r.kind),
        institution_id: r.institution_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        organisation: r.organisation.as_ref().map(organisation_to_proto),
        counterpart_name: r.counterpart_name.clone(),
        counterpart_role: r.counterpart_role.clone(),
        valid: (r.valid_from.is_some() || r.valid_to.is_some())
            .then(|| common::DateRange { start: r.valid_from.map(date), end: r.valid_to.map(date) }),
        source: contract_value("RELATION_SOURCE_", r.source.code(), pb::RelationSource::from_str_name),
        source_ref: r.source_ref.clone(),
        evidence: Some(evidence_to_proto(&r.evidence)),
        note: r.note.clone(),
        recorded_by: Some(r.recorded_by.to_proto()),
        record_time: Some(timestamp(r.recorded_at)),
        recorded_in_error: r.recorded_in_error,
        end_reason: r.end_reason.clone(),
    }
}

pub fn reason_to_proto(r: &ConflictReason) -> pb::ConflictReason {
    pb::ConflictReason {
        relation_type: relation_kind_to_proto(r.kind),
        relation_id: r.relation_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        path: contract_value("CONFLICT_PATH_", r.path.code(), pb::ConflictPath::from_str_name),
        conflicted_until: r.until.map(date),
    }
}

pub fn conflicted_to_proto(expert_id: &ExpertId, reasons: &[ConflictReason]) -> pb::ConflictedExpert {
    pb::ConflictedExpert { expert_id: expert_id.to_string(), reasons: reasons.iter().map(reason_to_proto).collect() }
}

pub fn pool_expert_to_proto(c: &crate::relations::PoolCandidate) -> pb::DrawPoolExpert {
    pb::DrawPoolExpert {
        expert_id: c.row.expert_id.to_string(),
        status: expert_status_to_proto(c.row.status),
        term: Some(common::DateRange { start: Some(date(c.row.term_start)), end: Some(date(c.row.term_end)) }),
        trained: c.row.trained,
        specialties: c
            .row
            .specialties
            .iter()
            .map(|code| common::SpecialtyCode { code: code.clone(), name: String::new() })
            .collect(),
        employer_key: c.row.employer_key.clone(),
        represented_unit_key: c.row.represented.as_ref().map(Organisation::key).unwrap_or_default(),
        conflicts: c.conflicts.iter().map(reason_to_proto).collect(),
        scheduled_change: c.scheduled.as_ref().map(status_change_to_proto),
        term_ended: c.row.ended.map(date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        let mut f: Vec<String> = status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        f.sort();
        f
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    #[test]
    fn a_relation_names_its_counterparty_kind_and_dates() {
        let req = pb::RecordRelationRequest {
            expert_id: "nobody".into(),
            r#type: common::RelationType::PastEmployment as i32,
            source: pb::RelationSource::Recusal as i32,
            ..Default::default()
        };
        let err = new_relation(&req, Utc::now(), today(), false).unwrap_err();
        assert_eq!(fields(&err), ["expert_id", "institution_id", "source", "valid.end"]);

        let relative = pb::RecordRelationRequest {
            expert_id: ExpertId::generate().to_string(),
            r#type: common::RelationType::Relative as i32,
            institution_id: InstitutionId::generate().to_string(),
            source: pb::RelationSource::SelfDeclared as i32,
            ..Default::default()
        };
        let err = new_relation(&relative, Utc::now(), today(), false).unwrap_err();
        assert_eq!(fields(&err), ["counterpart_name", "on_behalf"], "a person, and how staff received it");
        let mut by_expert = relative.clone();
        by_expert.counterpart_name = "张三".into();
        by_expert.source = 0;
        let new = new_relation(&by_expert, Utc::now(), today(), true).unwrap();
        assert_eq!(new.source, RelationSource::SelfDeclared);
    }

    #[test]
    fn a_recusal_is_keyed_by_its_assignment() {
        let req = pb::RecordConflictRequest {
            request_id: "other".into(),
            assignment_id: "asg_1".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(&recusal(&req, Utc::now()).unwrap_err()),
            ["assignment_id", "declared_time", "expert_id", "institution_id", "request_id", "task_id"]
        );
    }
}
