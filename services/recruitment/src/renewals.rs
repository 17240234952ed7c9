//! 续任 (article 11, D11): a renewal case per running term.
//!
//! Started by the city bureau (the expert then confirms willingness, ConfirmRenewal) or by the
//! expert (willingness implied; staff may enter it on the expert's behalf, D16), from the renewal
//! window (90 days in edition 1, an edition parameter) before the term ends until its last day.
//! The term is the one the registry reports running today (ListAppointments, SERVICE). Condition
//! 6(四) is re-checked (RecordRenewalCheck), then CITY_ADMIN decides: an approval needs the
//! expert's willingness and a met check and goes to the registry's RenewTerm through the outbox,
//! keyed by the renewal id, in the decision's transaction; the confirmer records the new term and
//! certificate once delivered. A case still waiting when its term has ended reads as EXPIRED.
//!
//! The case is kept as its contract message (hex-encoded protobuf) with the columns it is found
//! by; one case per term.

use chrono::{Duration, NaiveDate};
use prost::Message;
use sqlx::{Any, AnyConnection, Row, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, Page, Role, SharedClock,
    audit::{self, Change},
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    convert::{date, optional_date, timestamp},
    idempotency::Command,
    outbox::{self, Delivery},
    storage::{format_instant, is_unique_violation},
    telemetry::PropagateTrace,
    vocab::{is_prefixed_id, new_prefixed_id},
};
use supervision_proto::{
    common, recruitment as pb,
    registry::{self as rpb, registry_service_client::RegistryServiceClient},
};
use supervision_reference::{Reference, ReferenceError};
use tonic::{Status, metadata::MetadataValue};

use crate::{error::Error, reapplication::RegistryPeer};

/// The registry's method an approved renewal is delivered to.
pub const RENEW_TERM: &str = "/supervision.registry.v1.RegistryService/RenewTerm";

const MAX_NOTE_CHARS: usize = 1000;

fn corrupt(id: &str, problem: impl std::fmt::Display) -> Error {
    Error::Store(crate::store::StoreError::Corrupt { id: id.to_owned(), problem: problem.to_string() })
}

fn day(d: Option<&common::Date>) -> Option<NaiveDate> {
    let d = d?;
    NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?)
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("renewal {id} not found"))
}

fn status_code(s: i32) -> &'static str {
    let name = pb::RenewalStatus::try_from(s).unwrap_or_default().as_str_name();
    name.strip_prefix("RENEWAL_STATUS_").unwrap_or(name)
}

fn authorised<T>(message: T, peer: &RegistryPeer, actor: &Actor) -> Result<tonic::Request<T>, Status> {
    let mut request = tonic::Request::new(message);
    let bearer = MetadataValue::try_from(format!("Bearer {}", peer.service_token))
        .map_err(|_| Status::internal("the SERVICE token is not a header value"))?;
    request.metadata_mut().insert(AUTHORIZATION, bearer);
    request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(actor)));
    Ok(request)
}

/// The term of `expert_id` running on `today`, as the registry has it.
pub async fn running_term(
    peer: Option<&RegistryPeer>,
    actor: &Actor,
    expert_id: &str,
    today: NaiveDate,
) -> Result<rpb::Appointment, Status> {
    let Some(peer) = peer else {
        return Err(Status::unavailable("no registry is configured: a renewal needs the expert's running term"));
    };
    let mut request = authorised(
        rpb::ListAppointmentsRequest { expert_id: expert_id.to_owned(), ..Default::default() },
        peer,
        actor,
    )?;
    request.set_timeout(peer.timeouts.call);
    let mut client = RegistryServiceClient::with_interceptor(peer.channel.clone(), PropagateTrace);
    let terms =
        supervision_kit::client::deadline(peer.timeouts.call, "ListAppointments", client.list_appointments(request))
            .await
            .map_err(|s| Status::unavailable(format!("the registry did not answer: {:?}: {}", s.code(), s.message())))?
            .into_inner()
            .appointments;
    terms
        .into_iter()
        .find(|a| {
            let term = a.term.unwrap_or_default();
            a.end_reason == 0
                && day(term.start.as_ref()).is_some_and(|s| s <= today)
                && day(term.end.as_ref()).is_some_and(|e| today <= e)
        })
        .ok_or_else(|| Status::failed_precondition(format!("expert {expert_id} holds no term running on {today}")))
}

/// A renewal as `today` shows it: a case still waiting after its term ended is EXPIRED.
pub fn as_of(mut r: pb::Renewal, today: NaiveDate) -> pb::Renewal {
    let waiting = [
        pb::RenewalStatus::AwaitingExpert as i32,
        pb::RenewalStatus::AwaitingCheck as i32,
        pb::RenewalStatus::AwaitingDecision as i32,
    ];
    if waiting.contains(&r.status) && day(r.term_end.as_ref()).is_some_and(|end| today > end) {
        r.status = pb::RenewalStatus::Expired as i32;
    }
    r
}

pub fn renewal_id(raw: &str, field: &str) -> Result<String, Status> {
    if is_prefixed_id(raw, "ren_") {
        Ok(raw.to_owned())
    } else {
        let mut v = FieldViolations::new();
        v.add(field, "must be a renewal id (ren_...)");
        v.check()?;
        unreachable!("a violation was added")
    }
}

async fn load(conn: &mut AnyConnection, id: &str) -> Result<pb::Renewal, Status> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM renewals WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(Error::from)?;
    let body = body.ok_or_else(|| not_found(id))?;
    let bytes = hex::decode(&body).map_err(|e| corrupt(id, e))?;
    Ok(pb::Renewal::decode(bytes.as_slice()).map_err(|e| corrupt(id, e))?)
}

/// The renewal under its row lock, for a write path: a no-op update takes the lock on both
/// backends, so two transactions cannot both act on the same state (one waits, then reads the
/// other's result).
async fn load_locked(tx: &mut Transaction<'static, Any>, id: &str) -> Result<pb::Renewal, Status> {
    sqlx::query("UPDATE renewals SET status = status WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(Error::from)?;
    load(tx, id).await
}

async fn save(tx: &mut Transaction<'static, Any>, r: &pb::Renewal) -> Result<(), Error> {
    let delivery = match pb::DeliveryStatus::try_from(r.delivery) {
        Ok(pb::DeliveryStatus::Pending) => "PENDING",
        Ok(pb::DeliveryStatus::Delivered) => "DELIVERED",
        _ => "",
    };
    sqlx::query("UPDATE renewals SET status = $1, delivery = $2, body = $3 WHERE id = $4")
        .bind(status_code(r.status))
        .bind(delivery)
        .bind(hex::encode(r.encode_to_vec()))
        .bind(&r.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn audit_change(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    r: &pb::Renewal,
    action: &str,
    before: Option<&str>,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "renewal",
        entity_id: &r.id,
        action,
        before: before.map(|b| serde_json::json!({ "status": b })),
        after: Some(serde_json::json!({
            "status": status_code(r.status),
            "expert_id": r.expert_id,
            "appointment_id": r.appointment_id,
            "expert_willing": r.expert_willing,
            "check_met": r.check.as_ref().map(|c| c.met),
            "decision": pb::RenewalDecision::try_from(r.decision).unwrap_or_default().as_str_name(),
            "decision_reason": r.decision_reason,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// Whether `caller` speaks for the expert of `expert_id`: the expert, or CITY_ADMIN with the
/// channel and time the expert's word arrived (D16).
fn for_the_expert(
    caller: &Caller,
    expert_id: &str,
    on_behalf: Option<&common::OnBehalf>,
    now: chrono::DateTime<chrono::Utc>,
    v: &mut FieldViolations,
) -> Result<(), Status> {
    match caller.role {
        Role::Expert => {
            if caller.expert_id.as_deref() != Some(expert_id) {
                return Err(Status::permission_denied("an expert acts only on their own renewal"));
            }
            if on_behalf.is_some() {
                v.add("on_behalf", "is for staff entering the expert's word; an expert acts for themself");
            }
        }
        _ => {
            if on_behalf.is_none() {
                v.add("on_behalf", "is required when staff enter the expert's word: how and when it arrived (D16)");
            } else {
                supervision_kit::convert::on_behalf(on_behalf, "on_behalf", now, v);
            }
        }
    }
    Ok(())
}

/// Validates a StartRenewal apart from the term, which the registry gives.
pub fn start_request(
    caller: &Caller,
    req: &pb::StartRenewalRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<pb::RenewalInitiator, Status> {
    let mut v = FieldViolations::new();
    if !is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    if req.note.chars().count() > MAX_NOTE_CHARS {
        v.add("note", format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    let initiator = match pb::RenewalInitiator::try_from(req.initiator) {
        Ok(i @ (pb::RenewalInitiator::Bureau | pb::RenewalInitiator::Expert)) => i,
        _ => {
            v.add("initiator", "must be BUREAU or EXPERT");
            pb::RenewalInitiator::Unspecified
        }
    };
    match initiator {
        pb::RenewalInitiator::Bureau => {
            if caller.role != Role::CityAdmin {
                return Err(Status::permission_denied("only the city bureau starts a renewal as BUREAU"));
            }
            if req.on_behalf.is_some() {
                v.add("on_behalf", "a renewal the bureau starts is its own act");
            }
        }
        pb::RenewalInitiator::Expert => for_the_expert(caller, &req.expert_id, req.on_behalf.as_ref(), now, &mut v)?,
        pb::RenewalInitiator::Unspecified => {}
    }
    v.check()?;
    Ok(initiator)
}

/// Starts a renewal of `term` inside `tx`, within the edition's window before it ends.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    req: &pb::StartRenewalRequest,
    initiator: pb::RenewalInitiator,
    term: &rpb::Appointment,
    today: NaiveDate,
) -> Result<pb::Renewal, Status> {
    let end = term
        .term
        .as_ref()
        .and_then(|t| day(t.end.as_ref()))
        .ok_or_else(|| Status::internal("a term without an end"))?;
    let window = reference.editions().edition_in_force(today).map_err(|e| Error::from(ReferenceError::from(e)))?;
    let opens = end - Duration::days(i64::from(window.appointment.renewal_window_days));
    if today < opens {
        return Err(Status::failed_precondition(format!(
            "the term {} ends on {end}; a renewal may be started from {opens} ({} days before, D11)",
            term.id, window.appointment.renewal_window_days
        )));
    }
    let taken: Option<String> = sqlx::query_scalar("SELECT id FROM renewals WHERE appointment_id = $1")
        .bind(&term.id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(Error::from)?;
    if let Some(existing) = taken {
        return Err(Status::already_exists(format!("the term {} already has renewal {existing}", term.id)));
    }
    let now = clock.now();
    let by_expert = initiator == pb::RenewalInitiator::Expert;
    let renewal = pb::Renewal {
        id: new_prefixed_id("ren_"),
        expert_id: req.expert_id.clone(),
        appointment_id: term.id.clone(),
        term_end: Some(date(end)),
        initiator: initiator as i32,
        status: if by_expert { pb::RenewalStatus::AwaitingCheck } else { pb::RenewalStatus::AwaitingExpert } as i32,
        expert_willing: by_expert,
        confirm_time: by_expert.then(|| {
            timestamp(
                req.on_behalf
                    .as_ref()
                    .and_then(|o| o.received_time.as_ref())
                    .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                    .unwrap_or(now),
            )
        }),
        confirm_on_behalf: if by_expert { req.on_behalf.clone() } else { None },
        started_by: Some(caller.actor().to_proto()),
        create_time: Some(timestamp(now)),
        ..Default::default()
    };
    sqlx::query(
        "INSERT INTO renewals (id, expert_id, appointment_id, status, delivery, body, created_at) \
         VALUES ($1, $2, $3, $4, '', $5, $6)",
    )
    .bind(&renewal.id)
    .bind(&renewal.expert_id)
    .bind(&renewal.appointment_id)
    .bind(status_code(renewal.status))
    .bind(hex::encode(renewal.encode_to_vec()))
    .bind(format_instant(now))
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        // A concurrent start of the same term committed first.
        if is_unique_violation(&e, "renewals_appointment_id_key", "renewals.appointment_id") {
            Status::already_exists(format!("the term {} already has a renewal", term.id))
        } else {
            Status::from(Error::from(e))
        }
    })?;
    audit_change(tx, db, clock, caller, command, &renewal, "start", None).await?;
    Ok(renewal)
}

/// Records the expert's answer to a bureau-started renewal.
#[allow(clippy::too_many_arguments)]
pub async fn confirm(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    req: &pb::ConfirmRenewalRequest,
    today: NaiveDate,
) -> Result<pb::Renewal, Status> {
    let id = renewal_id(&req.renewal_id, "renewal_id")?;
    let mut r = as_of(load_locked(tx, &id).await?, today);
    let now = clock.now();
    let mut v = FieldViolations::new();
    for_the_expert(caller, &r.expert_id, req.on_behalf.as_ref(), now, &mut v)?;
    if req.note.chars().count() > MAX_NOTE_CHARS {
        v.add("note", format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    v.check()?;
    if r.status != pb::RenewalStatus::AwaitingExpert as i32 {
        return Err(Status::failed_precondition(format!(
            "renewal {id} is {}; the expert answers while it is AWAITING_EXPERT",
            status_code(r.status)
        )));
    }
    let before = status_code(r.status);
    r.expert_willing = req.willing;
    r.confirm_time = Some(timestamp(
        req.on_behalf
            .as_ref()
            .and_then(|o| o.received_time.as_ref())
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .unwrap_or(now),
    ));
    r.confirm_on_behalf = req.on_behalf.clone();
    r.status = if req.willing { pb::RenewalStatus::AwaitingCheck } else { pb::RenewalStatus::DeclinedByExpert } as i32;
    save(tx, &r).await?;
    audit_change(tx, db, clock, caller, command, &r, "confirm", Some(before)).await?;
    Ok(r)
}

/// Records the 6(四) re-check.
#[allow(clippy::too_many_arguments)]
pub async fn record_check(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    req: &pb::RecordRenewalCheckRequest,
    today: NaiveDate,
) -> Result<pb::Renewal, Status> {
    let id = renewal_id(&req.renewal_id, "renewal_id")?;
    let mut v = FieldViolations::new();
    let check = req.check.clone().unwrap_or_default();
    if req.check.is_none() {
        v.add("check", "is required");
    }
    let certificate = optional_date(check.certificate_date.as_ref(), "check.certificate_date", &mut v);
    let listed = optional_date(check.list_check_date.as_ref(), "check.list_check_date", &mut v);
    if req.check.is_some() && certificate.is_none() {
        v.add("check.certificate_date", "the issue date of the 无犯罪记录证明 is required");
    }
    if req.check.is_some() && listed.is_none() {
        v.add("check.list_check_date", "the day the 失信 lists were checked is required");
    }
    for (field, d) in [("check.certificate_date", certificate), ("check.list_check_date", listed)] {
        if d.is_some_and(|d| d > today) {
            v.add(field, "must not be in the future");
        }
    }
    if !check.material_ids.is_empty() {
        v.add("check.material_ids", "materials of renewals are not accepted yet; describe the documents in the note");
    }
    if check.note.trim().is_empty() {
        v.add("check.note", "name the certificate (number, issuer) and the lists checked");
    } else if check.note.chars().count() > MAX_NOTE_CHARS {
        v.add("check.note", format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    v.check()?;
    let mut r = as_of(load_locked(tx, &id).await?, today);
    if r.status != pb::RenewalStatus::AwaitingCheck as i32 && r.status != pb::RenewalStatus::AwaitingDecision as i32 {
        return Err(Status::failed_precondition(format!(
            "renewal {id} is {}; the re-check is recorded once the expert is willing and before the decision",
            status_code(r.status)
        )));
    }
    let before = status_code(r.status);
    r.check = Some(pb::CleanRecordCheck {
        material_ids: Vec::new(),
        certificate_date: certificate.map(date),
        list_check_date: listed.map(date),
        met: check.met,
        note: check.note.trim().to_owned(),
        checked_by: Some(caller.actor().to_proto()),
    });
    r.status = pb::RenewalStatus::AwaitingDecision as i32;
    save(tx, &r).await?;
    audit_change(tx, db, clock, caller, command, &r, "record_check", Some(before)).await?;
    Ok(r)
}

/// Decides a renewal; an approval goes to the registry's RenewTerm through the outbox.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    req: &pb::DecideRenewalRequest,
    today: NaiveDate,
) -> Result<pb::Renewal, Status> {
    let id = renewal_id(&req.renewal_id, "renewal_id")?;
    let mut v = FieldViolations::new();
    let decision = match pb::RenewalDecision::try_from(req.decision) {
        Ok(d @ (pb::RenewalDecision::Approve | pb::RenewalDecision::Reject)) => d,
        _ => {
            v.add("decision", "must be APPROVE or REJECT");
            pb::RenewalDecision::Unspecified
        }
    };
    let reason = req.reason.trim().to_owned();
    if decision == pb::RenewalDecision::Reject && reason.is_empty() {
        v.add("reason", "a refusal gives its reason");
    }
    if reason.chars().count() > MAX_NOTE_CHARS {
        v.add("reason", format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    let decision_date = optional_date(req.decision_date.as_ref(), "decision_date", &mut v).unwrap_or(today);
    if decision_date > today {
        v.add("decision_date", "must not be in the future");
    }
    v.check()?;
    let mut r = as_of(load_locked(tx, &id).await?, today);
    if r.status != pb::RenewalStatus::AwaitingDecision as i32 {
        return Err(Status::failed_precondition(format!(
            "renewal {id} is {}; a decision needs the expert's willingness and the 6(四) re-check first",
            status_code(r.status)
        )));
    }
    let check = r.check.clone().unwrap_or_default();
    if decision == pb::RenewalDecision::Approve && !(r.expert_willing && check.met) {
        return Err(Status::failed_precondition(format!(
            "renewal {id}: an approval needs the expert's willingness and condition 6(四) found met"
        )));
    }
    let before = status_code(r.status);
    r.decision = decision as i32;
    r.decision_reason = reason;
    r.decision_date = Some(date(decision_date));
    if decision == pb::RenewalDecision::Approve {
        r.status = pb::RenewalStatus::Approved as i32;
        r.delivery = pb::DeliveryStatus::Pending as i32;
        let certificate = check.certificate_date.as_ref().and_then(|d| day(Some(d)));
        let listed = check.list_check_date.as_ref().and_then(|d| day(Some(d)));
        let description = format!(
            "无犯罪记录证明 {} 出具；失信名单 {} 核查；{}",
            certificate.map(|d| d.to_string()).unwrap_or_default(),
            listed.map(|d| d.to_string()).unwrap_or_default(),
            check.note
        );
        let message = rpb::RenewTermRequest {
            request_id: r.id.clone(),
            renewal_id: r.id.clone(),
            expert_id: r.expert_id.clone(),
            decision_date: Some(date(decision_date)),
            clean_record_check: Some(rpb::ConditionRecord {
                condition: common::EligibilityCondition::CleanRecord as i32,
                evidence: Some(common::Evidence { description, documents: Vec::new() }),
                checked_date: listed.map(date),
                checked_by: check.checked_by.clone(),
                met: true,
                note: String::new(),
            }),
            categories: Vec::new(),
        };
        let actor = caller.actor();
        let delivery = Delivery { destination: "registry", method: RENEW_TERM, idempotency_key: &r.id, actor: &actor };
        outbox::enqueue(tx, clock, delivery, &message).await.map_err(Error::from)?;
    } else {
        r.status = pb::RenewalStatus::Rejected as i32;
    }
    save(tx, &r).await?;
    audit_change(tx, db, clock, caller, command, &r, "decide", Some(before)).await?;
    Ok(r)
}

/// Reads one renewal; an expert only their own.
pub async fn get(db: &Db, caller: &Caller, id: &str, today: NaiveDate) -> Result<pb::Renewal, Status> {
    let mut conn = db.pool().acquire().await.map_err(Error::from)?;
    let r = load(&mut conn, id).await?;
    if caller.role == Role::Expert && caller.expert_id.as_deref() != Some(r.expert_id.as_str()) {
        return Err(not_found(id));
    }
    Ok(as_of(r, today))
}

/// Lists renewals newest first, by expert and state; an expert lists only their own.
pub async fn list(
    db: &Db,
    caller: &Caller,
    req: &pb::ListRenewalsRequest,
    today: NaiveDate,
) -> Result<(Vec<pb::Renewal>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "ren_"), &mut v);
    if !req.expert_id.is_empty() && !is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    let status = match pb::RenewalStatus::try_from(req.status) {
        Ok(pb::RenewalStatus::Unspecified) => None,
        Ok(s) => Some(s as i32),
        Err(_) => {
            v.add("status", "is not a renewal status");
            None
        }
    };
    let (ends_from, ends_to) = match req.term_end.as_ref() {
        Some(range) => (
            optional_date(range.start.as_ref(), "term_end.start", &mut v),
            optional_date(range.end.as_ref(), "term_end.end", &mut v),
        ),
        None => (None, None),
    };
    v.check()?;
    let in_range = |r: &pb::Renewal| {
        let end = day(r.term_end.as_ref());
        ends_from.is_none_or(|f| end.is_some_and(|e| e >= f)) && ends_to.is_none_or(|t| end.is_some_and(|e| e <= t))
    };
    let expert =
        if caller.role == Role::Expert { caller.expert_id.clone().unwrap_or_default() } else { req.expert_id.clone() };
    let rows = sqlx::query(
        "SELECT id FROM renewals WHERE ($1 = '' OR expert_id = $1) AND ($2 = '' OR id < $2) ORDER BY id DESC",
    )
    .bind(&expert)
    .bind(page.after.as_deref().unwrap_or_default())
    .fetch_all(db.pool())
    .await
    .map_err(Error::from)?;
    let mut conn = db.pool().acquire().await.map_err(Error::from)?;
    let mut items = Vec::new();
    for row in &rows {
        let id: String = row.try_get("id").map_err(Error::from)?;
        let r = as_of(load(&mut conn, &id).await?, today);
        if status.is_none_or(|s| r.status == s) && in_range(&r) {
            items.push(r);
        }
        if items.len() > page.size as usize {
            break;
        }
    }
    Ok(page.finish(items, |r| r.id.clone()))
}

/// The renewals whose RenewTerm the relay delivered and whose answer is not recorded yet:
/// `(renewal id, payload, actor_json)`, a page of up to `limit` after the id `after` (keyset
/// order, so a row that keeps failing does not hide the ones after it). A row whose columns
/// cannot be read is an `Err` of its own, so the others are still returned.
pub async fn delivered_pending(
    db: &Db,
    after: &str,
    limit: i64,
) -> Result<Vec<Result<(String, Vec<u8>, String), Error>>, Error> {
    let rows = sqlx::query(
        "SELECT r.id, o.payload, o.actor_json FROM renewals r JOIN kit_outbox o ON o.destination = 'registry' \
         AND o.method = $1 AND o.idempotency_key = r.id WHERE r.delivery = 'PENDING' AND o.delivered_at IS NOT NULL \
         AND r.id > $2 ORDER BY r.id LIMIT $3",
    )
    .bind(RENEW_TERM)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok((row.try_get("id")?, row.try_get("payload")?, row.try_get("actor_json")?))
                .map_err(|e: sqlx::Error| Error::from(e))
        })
        .collect())
}

/// Records the registry's answer to a delivered renewal, fenced on it still being PENDING.
pub async fn record_delivery(
    db: &Db,
    clock: &SharedClock,
    id: &str,
    actor: &Caller,
    answer: &rpb::RenewTermResponse,
) -> Result<bool, Status> {
    let Some(appointment) = &answer.appointment else {
        return Err(Status::unavailable("the registry's answer has no appointment"));
    };
    let mut tx = db.begin_write().await.map_err(Error::from)?;
    let mut r = load_locked(&mut tx, id).await?;
    if r.delivery != pb::DeliveryStatus::Pending as i32 {
        return Ok(false);
    }
    r.delivery = pb::DeliveryStatus::Delivered as i32;
    r.status = pb::RenewalStatus::Renewed as i32;
    r.new_appointment_id = appointment.id.clone();
    r.certificate_number = appointment.certificate_number.clone();
    r.new_term = appointment.term;
    save(&mut tx, &r).await?;
    let command_method = RENEW_TERM;
    let change = Change {
        method: command_method,
        request_id: id,
        entity_type: "renewal",
        entity_id: id,
        action: "deliver",
        before: Some(serde_json::json!({ "status": "APPROVED", "delivery": "PENDING" })),
        after: Some(serde_json::json!({
            "status": "RENEWED",
            "delivery": "DELIVERED",
            "new_appointment_id": r.new_appointment_id,
            "certificate_number": r.certificate_number,
        })),
    };
    audit::append(&mut tx, db.backend(), clock, actor, change).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(true)
}
