//! 违纪/事件 — incidents concerning an expert (articles 9, 12; D4; DOMAIN.md 5.16, 6.8): late
//! declines and no-shows sent by dispatch, breaches of article 9's nine rules and false materials
//! (12(二)) recorded by staff, the expert's statement, and the city bureau's decision.
//!
//! Choices where the sources leave room (written down in docs/registry-rules.md):
//! - dispatch (SERVICE) sends only LATE_DECLINE and NO_SHOW, keyed `<assignment_id>:late_decline`
//!   or `<assignment_id>:no_show`; staff record the other kinds, never those two (D4: the
//!   operator records a no-show in dispatch, which sends it here);
//! - a county operator refers incidents as its own bureau and sees only what it reported;
//! - statements are taken until the decision; the first statement moves REPORTED to
//!   UNDER_INVESTIGATION;
//! - the decision is CITY_ADMIN's (the access table): TERMINATION needs SUBSTANTIATED (12(一)(二)),
//!   and a NOT_SUBSTANTIATED finding allows only NO_ACTION or NOTE; SUSPENSION and TERMINATION run
//!   the status-change use case in the same transaction (status, certificate, dispatch outbox);
//!   a termination rests on 12(二) for false materials, 12(五) for a record that arose (6(四)),
//!   12(一) otherwise. Nothing here ever decides by itself (D4).
//! - each row keeps its contract message (see migration 0005).

use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;
use sqlx::{Any, AnyExecutor, Row, Transaction};
use supervision_kit::{
    Bureau, Caller, Db, FieldViolations, Page, Role, SharedClock, audit,
    convert::{long_text, on_behalf, optional_date, required_enum, timestamp},
    idempotency::Command,
    personal::PersonalDataKey,
    vocab::is_prefixed_id,
};
use supervision_proto::registry as pb;
use tonic::Status;

use crate::{
    appointments,
    convert::{appointments::StatusRequest, experts::evidence},
    domain::{Evidence, ExpertId, StatusGround},
    error::Error,
    experts::snapshot,
};

const PREFIX: &str = "inc_";
const MAX_TEXT_CHARS: usize = 4000;

/// Encodes a contract message for a `body` column.
pub(crate) fn encode_body<M: Message>(message: &M) -> String {
    hex::encode(message.encode_to_vec())
}

/// Decodes a `body` column.
pub(crate) fn decode_body<M: Message + Default>(table: &'static str, id: &str, body: &str) -> Result<M, Error> {
    let bad = |problem: String| {
        Error::Store(crate::store::StoreError::Corrupt(crate::store::CorruptRow { table, id: id.to_owned(), problem }))
    };
    let bytes = hex::decode(body).map_err(|e| bad(e.to_string()))?;
    M::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))
}

fn kind_code(kind: i32) -> &'static str {
    let name = pb::IncidentKind::try_from(kind).unwrap_or_default().as_str_name();
    name.strip_prefix("INCIDENT_KIND_").unwrap_or(name)
}

fn status_code(status: i32) -> &'static str {
    let name = pb::IncidentStatus::try_from(status).unwrap_or_default().as_str_name();
    name.strip_prefix("INCIDENT_STATUS_").unwrap_or(name)
}

fn bureau_code(bureau: i32) -> &'static str {
    Bureau::from_proto(bureau).map(Bureau::division_code).unwrap_or_default()
}

/// Checks a RecordIncident request and builds the incident it opens (REPORTED).
pub fn new_incident(
    req: &pb::RecordIncidentRequest,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<pb::Incident, Status> {
    use pb::{DisciplineRule as R, IncidentKind as K, IncidentSource as S};
    let mut v = FieldViolations::new();
    if ExpertId::parse(req.expert_id.trim()).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let kind = required_enum::<K>(req.kind, "kind", "the kind of incident", &mut v);
    let from_dispatch = caller.role == Role::Service;
    let mut rule = R::try_from(req.rule).unwrap_or_default();
    if pb::DisciplineRule::try_from(req.rule).is_err() {
        v.add("rule", "is not a rule of article 9");
    }
    let assignment_id = req.assignment_id.trim().to_owned();
    if !assignment_id.is_empty() && !is_prefixed_id(&assignment_id, "asg_") {
        v.add("assignment_id", "is not an assignment id (asg_...)");
    }
    let task_id = req.task_id.trim().to_owned();
    if !task_id.is_empty() && !is_prefixed_id(&task_id, "tsk_") {
        v.add("task_id", "is not a task id (tsk_...)");
    }
    let mut source = S::try_from(req.source).unwrap_or_default();
    match kind {
        Some(k @ (K::LateDecline | K::NoShow)) => {
            if !from_dispatch {
                v.add("kind", "late declines and no-shows come from dispatch (D4); record them there");
            }
            if !matches!(rule, R::Unspecified | R::Notice) {
                v.add("rule", "a late decline or a no-show breaches 9(七), NOTICE");
            }
            rule = R::Notice;
            if assignment_id.is_empty() {
                v.add("assignment_id", "is required for a late decline or a no-show");
            }
            let suffix = if k == K::LateDecline { "late_decline" } else { "no_show" };
            if from_dispatch && req.request_id != format!("{assignment_id}:{suffix}") {
                v.add(
                    "request_id",
                    format!("must be `<assignment_id>:{suffix}`, so each assignment gives one incident"),
                );
            }
            if !matches!(source, S::Unspecified | S::Dispatch) {
                v.add("source", "a late decline or a no-show comes from DISPATCH");
            }
            source = S::Dispatch;
        }
        Some(K::DisciplineBreach) if rule == R::Unspecified => {
            v.add("rule", "names the article 9 rule breached");
        }
        Some(K::FalseMaterials | K::RecordArisen) if rule != R::Unspecified => {
            v.add("rule", "only for late declines, no-shows and breaches of article 9");
        }
        Some(_) if from_dispatch => v.add("kind", "dispatch sends only late declines and no-shows"),
        _ => {}
    }
    if source == S::Unspecified {
        v.add("source", "who raised it (bureau, institution, public)");
    } else if source == S::Dispatch && !from_dispatch {
        v.add("source", "DISPATCH is set by dispatch only");
    }
    let own = caller
        .bureau
        .or_else(|| caller.acting_for.as_ref().and_then(|a| a.bureau.as_deref()).and_then(Bureau::from_division_code));
    let reporting = match Bureau::from_proto(req.reporting_bureau) {
        Some(b) => Some(b),
        None if req.reporting_bureau == 0 => Some(own.unwrap_or(Bureau::City)),
        None => {
            v.add("reporting_bureau", "is not a bureau of Jiangmen");
            None
        }
    };
    let occur_time = match req.occur_time.as_ref() {
        None => now,
        Some(t) => match DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)) {
            Some(at) if at <= now => at,
            Some(_) => {
                v.add("occur_time", "must not be in the future");
                now
            }
            None => {
                v.add("occur_time", "is not a valid time");
                now
            }
        },
    };
    let description = long_text(&req.description, "description", MAX_TEXT_CHARS, true, &mut v);
    evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    v.check()?;
    let reporting = reporting.expect("checked above");
    caller.require_bureau(reporting)?;
    Ok(pb::Incident {
        id: supervision_kit::vocab::new_prefixed_id(PREFIX),
        expert_id: req.expert_id.trim().to_owned(),
        kind: req.kind,
        rule: rule as i32,
        source: source as i32,
        assignment_id,
        task_id,
        reporting_bureau: reporting.to_proto() as i32,
        occur_time: Some(timestamp(occur_time)),
        description,
        evidence: req.evidence.clone(),
        status: pb::IncidentStatus::Reported as i32,
        statements: Vec::new(),
        decision: None,
        recorded_by: Some(caller.actor().to_proto()),
        record_time: Some(timestamp(now)),
    })
}

/// Opens `incident` inside `tx` for an expert who exists, with its audit entry.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    incident: pb::Incident,
) -> Result<pb::Incident, Error> {
    let exists = sqlx::query("SELECT id FROM experts WHERE id = $1")
        .bind(&incident.expert_id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !exists {
        return Err(Error::ExpertNotFound(incident.expert_id.clone()));
    }
    sqlx::query(
        "INSERT INTO incidents (id, expert_id, kind, status, reporting_bureau, assignment_id, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&incident.id)
    .bind(&incident.expert_id)
    .bind(kind_code(incident.kind))
    .bind(status_code(incident.status))
    .bind(bureau_code(incident.reporting_bureau))
    .bind(&incident.assignment_id)
    .bind(encode_body(&incident))
    .execute(&mut **tx)
    .await?;
    let after = serde_json::json!({
        "expert_id": incident.expert_id,
        "kind": kind_code(incident.kind),
        "rule": pb::DisciplineRule::try_from(incident.rule).unwrap_or_default().as_str_name(),
        "assignment_id": incident.assignment_id,
        "reporting_bureau": bureau_code(incident.reporting_bureau),
    });
    append_audit(tx, db, clock, caller, command, &incident.id, "record", None, Some(after)).await?;
    Ok(incident)
}

#[allow(clippy::too_many_arguments)]
async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &str,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), Error> {
    let change = audit::Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "incident",
        entity_id: id,
        action,
        before,
        after,
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// The stored incident `id`, if any.
pub async fn fetch(conn: impl AnyExecutor<'_>, id: &str) -> Result<Option<pb::Incident>, Error> {
    let row = sqlx::query("SELECT body FROM incidents WHERE id = $1").bind(id).fetch_optional(conn).await?;
    row.map(|r| decode_body("incidents", id, &r.try_get::<String, _>("body")?)).transpose()
}

async fn save(tx: &mut Transaction<'static, Any>, incident: &pb::Incident) -> Result<(), Error> {
    sqlx::query("UPDATE incidents SET status = $2, body = $3 WHERE id = $1")
        .bind(&incident.id)
        .bind(status_code(incident.status))
        .bind(encode_body(incident))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether `caller` may see `incident`: an EXPERT their own, a county operator what its bureau
/// reported, everyone else the access table allows.
fn visible(caller: &Caller, incident: &pb::Incident) -> bool {
    match caller.role {
        Role::Expert => caller.expert_id.as_deref() == Some(incident.expert_id.as_str()),
        Role::CountyOperator => caller.bureau.map(|b| b.to_proto() as i32) == Some(incident.reporting_bureau),
        _ => true,
    }
}

fn incident_id(raw: &str, field: &str) -> Result<String, Status> {
    let raw = raw.trim();
    if is_prefixed_id(raw, PREFIX) {
        Ok(raw.to_owned())
    } else {
        Err(supervision_kit::error::invalid_field(field, "is not an incident id (inc_...)"))
    }
}

/// One incident as `caller` may see it (else NOT_FOUND).
pub async fn get(db: &Db, caller: &Caller, raw_id: &str) -> Result<pb::Incident, Status> {
    let id = incident_id(raw_id, "id")?;
    let mut conn = snapshot(db).await?;
    match fetch(&mut *conn, &id).await? {
        Some(i) if visible(caller, &i) => Ok(i),
        _ => Err(Error::IncidentNotFound(id).into()),
    }
}

/// One page of incidents, newest first; an EXPERT sees their own, a county operator those it
/// reported.
pub async fn list(
    db: &Db,
    caller: &Caller,
    req: &pb::ListIncidentsRequest,
) -> Result<(Vec<pb::Incident>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, PREFIX), &mut v);
    let mut expert_id = req.expert_id.trim().to_owned();
    if !expert_id.is_empty() && ExpertId::parse(&expert_id).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    if pb::IncidentStatus::try_from(req.status).is_err() {
        v.add("status", "is not an incident status");
    }
    if pb::IncidentKind::try_from(req.kind).is_err() {
        v.add("kind", "is not an incident kind");
    }
    let mut bureau = String::new();
    if req.reporting_bureau != 0 {
        match Bureau::from_proto(req.reporting_bureau) {
            Some(b) => bureau = b.division_code().to_owned(),
            None => v.add("reporting_bureau", "is not a bureau of Jiangmen"),
        }
    }
    v.check()?;
    match caller.role {
        Role::Expert => {
            let own = caller.expert_id.clone().unwrap_or_default();
            if !expert_id.is_empty() && expert_id != own {
                return Ok((Vec::new(), None));
            }
            expert_id = own;
        }
        Role::CountyOperator => {
            let own = caller.bureau.map(Bureau::division_code).unwrap_or_default();
            if !bureau.is_empty() && bureau != own {
                return Ok((Vec::new(), None));
            }
            own.clone_into(&mut bureau);
        }
        _ => {}
    }
    let status = if req.status == 0 { "" } else { status_code(req.status) };
    let kind = if req.kind == 0 { "" } else { kind_code(req.kind) };
    let probe = page.probe();
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT id, body FROM incidents \
         WHERE ($1 = '' OR id < $1) AND ($2 = '' OR expert_id = $2) AND ($3 = '' OR status = $3) \
           AND ($4 = '' OR kind = $4) AND ($5 = '' OR reporting_bureau = $5) AND ($6 = '' OR assignment_id = $6) \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(&expert_id)
    .bind(status)
    .bind(kind)
    .bind(&bureau)
    .bind(req.assignment_id.trim())
    .bind(i64::from(probe.size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id").map_err(Error::from)?;
        let body: String = r.try_get("body").map_err(Error::from)?;
        items.push(decode_body::<pb::Incident>("incidents", &id, &body)?);
    }
    Ok(page.finish(items, |i| i.id.clone()))
}

/// A validated statement.
#[derive(Debug, Clone)]
pub struct NewStatement {
    pub incident_id: String,
    pub statement: pb::IncidentStatement,
}

/// Checks a RecordIncidentStatement request: the expert speaks for themself; staff give how they
/// received it (D16).
pub fn new_statement(
    req: &pb::RecordIncidentStatementRequest,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<NewStatement, Status> {
    let mut v = FieldViolations::new();
    let incident_id = req.incident_id.trim().to_owned();
    if !is_prefixed_id(&incident_id, PREFIX) {
        v.add("incident_id", "is not an incident id (inc_...)");
    }
    let text = long_text(&req.text, "text", MAX_TEXT_CHARS, true, &mut v);
    evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    let behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    let by_the_expert = caller.role == Role::Expert;
    if by_the_expert && req.on_behalf.is_some() {
        v.add("on_behalf", "is for staff entering a statement they received (D16)");
    }
    if !by_the_expert && req.on_behalf.is_none() {
        v.add("on_behalf", "is required when staff enter the expert's statement (D16)");
    }
    v.check()?;
    let receive_time = behalf.as_ref().map_or(now, |b| b.received_at);
    Ok(NewStatement {
        incident_id,
        statement: pb::IncidentStatement {
            text,
            evidence: req.evidence.clone(),
            receive_time: Some(timestamp(receive_time)),
            on_behalf: req.on_behalf.clone(),
            recorded_by: Some(caller.actor().to_proto()),
        },
    })
}

/// Adds a statement inside `tx`, before the decision.
pub async fn add_statement(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    new: NewStatement,
) -> Result<pb::Incident, Error> {
    let mut incident = locked(tx, caller, &new.incident_id).await?;
    if incident.status == pb::IncidentStatus::Decided as i32 {
        return Err(Error::IncidentDecided(incident.id));
    }
    incident.statements.push(new.statement);
    incident.status = pb::IncidentStatus::UnderInvestigation as i32;
    save(tx, &incident).await?;
    let after = serde_json::json!({ "statements": incident.statements.len(), "status": status_code(incident.status) });
    append_audit(tx, db, clock, caller, command, &incident.id, "statement", None, Some(after)).await?;
    Ok(incident)
}

/// The incident under its row lock (a no-op update takes it on both backends).
async fn locked(tx: &mut Transaction<'static, Any>, caller: &Caller, id: &str) -> Result<pb::Incident, Error> {
    sqlx::query("UPDATE incidents SET status = status WHERE id = $1").bind(id).execute(&mut **tx).await?;
    match fetch(&mut **tx, id).await? {
        Some(i) if visible(caller, &i) => Ok(i),
        _ => Err(Error::IncidentNotFound(id.to_owned())),
    }
}

/// A validated decision.
#[derive(Debug, Clone)]
pub struct Decision {
    pub incident_id: String,
    pub finding: pb::IncidentFinding,
    pub outcome: pb::IncidentOutcome,
    pub note: String,
    pub effective_date: NaiveDate,
}

/// Checks a DecideIncident request: TERMINATION only when SUBSTANTIATED (12(一)(二)); a finding
/// not substantiated allows no action or a note only.
pub fn decision(req: &pb::DecideIncidentRequest, today: NaiveDate) -> Result<Decision, Status> {
    use pb::{IncidentFinding as F, IncidentOutcome as O};
    let mut v = FieldViolations::new();
    if !is_prefixed_id(req.incident_id.trim(), PREFIX) {
        v.add("incident_id", "is not an incident id (inc_...)");
    }
    let finding = required_enum::<F>(req.finding, "finding", "whether it was verified (查实)", &mut v);
    let outcome = required_enum::<O>(req.outcome, "outcome", "the decision", &mut v);
    if finding == Some(F::NotSubstantiated) && !matches!(outcome, None | Some(O::NoAction | O::Note)) {
        v.add("outcome", "a finding not substantiated allows only NO_ACTION or NOTE (12(一)(二) need 查实)");
    }
    let note = long_text(&req.note, "note", MAX_TEXT_CHARS, true, &mut v);
    let effective_date = optional_date(req.effective_date.as_ref(), "effective_date", &mut v).unwrap_or(today);
    if effective_date < today {
        v.add("effective_date", "must not be in the past");
    }
    v.check()?;
    Ok(Decision {
        incident_id: req.incident_id.trim().to_owned(),
        finding: finding.expect("checked above"),
        outcome: outcome.expect("checked above"),
        note,
        effective_date,
    })
}

/// Records the city bureau's decision inside `tx`; SUSPENSION and TERMINATION change the expert's
/// status through the status-change use case (certificate and dispatch outbox included).
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    d: Decision,
) -> Result<(pb::Incident, Option<pb::ExpertStatusChange>), Error> {
    use pb::{IncidentKind as K, IncidentOutcome as O};
    let mut incident = locked(tx, caller, &d.incident_id).await?;
    if incident.status == pb::IncidentStatus::Decided as i32 {
        return Err(Error::IncidentDecided(incident.id));
    }
    let ground = match d.outcome {
        O::Suspension => Some(StatusGround::Suspended),
        O::Termination => Some(match K::try_from(incident.kind).unwrap_or_default() {
            K::FalseMaterials => StatusGround::FalseMaterials,
            K::RecordArisen => StatusGround::WorkReasons,
            _ => StatusGround::Discipline,
        }),
        _ => None,
    };
    let change = match ground {
        Some(ground) => {
            let expert_id = ExpertId::parse(&incident.expert_id)
                .ok_or_else(|| Error::ExpertNotFound(incident.expert_id.clone()))?;
            let request = StatusRequest {
                expert_id,
                ground,
                effective_date: d.effective_date,
                reason: format!("incident {}: {}", incident.id, d.note),
                incident_id: incident.id.clone(),
                evidence: Evidence { description: d.note.clone(), documents: Vec::new() },
                on_behalf: None,
            };
            Some(appointments::change_status(tx, db, clock, key, caller, command, request).await?.change)
        }
        None => None,
    };
    let change = change.as_ref().map(crate::convert::appointments::status_change_to_proto);
    incident.status = pb::IncidentStatus::Decided as i32;
    incident.decision = Some(pb::IncidentDecision {
        finding: d.finding as i32,
        outcome: d.outcome as i32,
        note: d.note,
        decided_by: Some(caller.actor().to_proto()),
        decide_time: Some(timestamp(clock.now())),
        status_change_id: change.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
    });
    save(tx, &incident).await?;
    let after = serde_json::json!({
        "finding": d.finding.as_str_name(),
        "outcome": d.outcome.as_str_name(),
        "status_change_id": change.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
    });
    append_audit(tx, db, clock, caller, command, &incident.id, "decide", None, Some(after)).await?;
    Ok((incident, change))
}

/// For a termination under 12(一) or 12(二): the named incident must concern the expert and have
/// been decided with a substantiated finding.
pub async fn require_substantiated(db: &Db, expert_id: &ExpertId, incident_id: &str) -> Result<(), Error> {
    let mut conn = snapshot(db).await?;
    let incident = fetch(&mut *conn, incident_id).await?;
    let substantiated = incident.is_some_and(|i| {
        i.expert_id == expert_id.as_str()
            && i.decision.is_some_and(|d| d.finding == pb::IncidentFinding::Substantiated as i32)
    });
    if substantiated { Ok(()) } else { Err(Error::IncidentNotSubstantiated(incident_id.to_owned())) }
}
