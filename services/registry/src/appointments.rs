//! Use cases of appointments, terms, certificates and status changes: each write is one
//! transaction with its audit entry and, for every status change, the ExpertStatusChanged event in
//! the outbox for dispatch (D17), keyed by the change's id.
//!
//! Choices where the sources leave room (written down in docs/registry-rules.md):
//! - a term's length is the edition's `term_years` in force on its first day, and it ends the day
//!   before that anniversary (D11, DOMAIN.md 14.4);
//! - a status change is applied when it is recorded; its effective date (today or later) goes to
//!   dispatch, which cancels and refills assignments with sessions on or after it;
//! - a term that ends early records the effective date as its `ended_date`;
//! - a renewal keeps the expert's status (a suspended expert renewed stays suspended), ends the
//!   current term as RENEWED on its last day and starts the next term the day after.

use chrono::{Datelike, Duration, NaiveDate};
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, Role, SharedClock,
    idempotency::Command,
    outbox::{self, Delivery},
    personal::PersonalDataKey,
};
use supervision_proto::dispatch as dispatch_pb;
use supervision_reference::{Reference, ReferenceError, shanghai_today};

use crate::{
    convert::{
        appointments::{NewAppointment, Renewal, StatusRequest, status_change_to_proto},
        experts::{ExpertUpdate, NewCivilServantEntry, NewExpert},
    },
    domain::{
        Appointment, AppointmentId, AppointmentKind, CertificateStatus, Evidence, Expert, ExpertId, ExpertKind,
        ExpertStatus, ProfilePatch, StatusChange, StatusChangeId, StatusGround,
        appointment::{certificate_number, term_end},
        civil_servant::{period_on, periods},
    },
    error::Error,
    experts::{self, append_audit, load, require_own, snapshot},
    store::{
        appointments::{self as sql, AppointmentFilter, StatusChangeFilter},
        experts as expert_sql,
    },
};

/// Where status changes go (ARCHITECTURE.md "Calls between services").
pub const DISPATCH: &str = "dispatch";
pub const EXPERT_STATUS_CHANGED: &str = "/supervision.dispatch.v1.DispatchService/ExpertStatusChanged";

/// An appointment made: the expert after it, the new term, and whether an earlier record of the
/// same person was reused.
#[derive(Debug, Clone)]
pub struct Appointed {
    pub expert: Expert,
    pub appointment: Appointment,
    pub existing_record: bool,
}

/// A status change made: the expert after it and the change.
#[derive(Debug, Clone)]
pub struct Changed {
    pub expert: Expert,
    pub change: StatusChange,
}

/// What one transition writes.
struct Transition<'a> {
    expert_id: &'a ExpertId,
    from: ExpertStatus,
    ground: StatusGround,
    effective_date: NaiveDate,
    /// The term concerned: ended here when the ground ends terms.
    appointment: Option<&'a Appointment>,
    /// The new end of the current term, for appointments and renewals.
    term_end: Option<NaiveDate>,
    application_id: Option<&'a str>,
    reason: String,
    incident_id: String,
    evidence: Evidence,
    on_behalf: Option<supervision_kit::vocab::OnBehalf>,
}

/// Records one status transition inside `tx`: refuses what DOMAIN.md 6.3 does not allow, ends
/// the term with the certificate expired or revoked (D17) when the ground ends it, sets the
/// expert's status, keeps the change, enqueues it for dispatch and appends the audit entry.
async fn transition(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    t: Transition<'_>,
) -> Result<StatusChange, Error> {
    let status = t
        .ground
        .transition(t.from)
        .ok_or(Error::TransitionRefused { status: t.from.code(), ground: t.ground.code() })?;
    let certificate = match t.ground {
        StatusGround::Appointed | StatusGround::Renewed => CertificateStatus::Valid,
        _ => StatusGround::certificate_after(status),
    };
    if let (Some(reason), Some(appointment)) = (t.ground.term_end_reason(), t.appointment) {
        // A term that ran out ends on its last day; one ended early on the effective date.
        let ended = if t.ground == StatusGround::TermEnded { appointment.term_end } else { t.effective_date };
        sql::end_appointment(tx, &appointment.id, reason, ended, certificate).await?;
    }
    let now = clock.now();
    if !sql::set_standing(tx, t.expert_id, status, t.term_end, t.application_id, now).await? {
        return Err(Error::ExpertNotFound(t.expert_id.to_string()));
    }
    let change = StatusChange {
        id: StatusChangeId::generate(),
        expert_id: t.expert_id.clone(),
        previous_status: t.from,
        status,
        ground: t.ground,
        effective_date: t.effective_date,
        at: now,
        reason: t.reason,
        incident_id: t.incident_id,
        appointment_id: t.appointment.map(|a| a.id.clone()),
        certificate_status: certificate,
        actor: caller.actor(),
        evidence: t.evidence,
        on_behalf: t.on_behalf,
    };
    sql::insert_status_change(tx, &change).await?;
    let event = dispatch_pb::ExpertStatusChangedRequest {
        request_id: change.id.to_string(),
        change: Some(status_change_to_proto(&change)),
    };
    let actor = caller.actor();
    let delivery = Delivery {
        destination: DISPATCH,
        method: EXPERT_STATUS_CHANGED,
        idempotency_key: change.id.as_str(),
        actor: &actor,
    };
    outbox::enqueue(tx, clock, delivery, &event).await?;
    let after = serde_json::json!({
        "status_change_id": change.id.as_str(),
        "from": t.from.code(),
        "to": status.code(),
        "ground": t.ground.code(),
        "article": t.ground.article(),
        "effective_date": t.effective_date.to_string(),
        "certificate_status": certificate.code(),
        "appointment_id": change.appointment_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        "incident_id": change.incident_id,
        "reason": change.reason,
    });
    let action = format!("status_{}", t.ground.code().to_ascii_lowercase());
    append_audit(
        tx,
        db,
        clock,
        caller,
        command.method,
        &command.request_id,
        t.expert_id,
        &action,
        Some(serde_json::json!({ "status": t.from.code() })),
        Some(after),
    )
    .await?;
    Ok(change)
}

/// Writes a new term with the next certificate number of its decision year.
#[allow(clippy::too_many_arguments)]
async fn new_term(
    tx: &mut Transaction<'static, Any>,
    clock: &SharedClock,
    expert: &Expert,
    kind: AppointmentKind,
    decision_date: NaiveDate,
    term_start: NaiveDate,
    term_years: u32,
    edition_number: u32,
    application_id: &str,
    renewal_id: &str,
    previous: Option<&AppointmentId>,
) -> Result<Appointment, Error> {
    let sequence = sql::next_certificate_sequence(tx, decision_date.year()).await?;
    let appointment = Appointment {
        id: AppointmentId::generate(),
        expert_id: expert.id.clone(),
        term_number: expert.appointment.as_ref().map_or(0, |a| a.term_number) + 1,
        kind,
        decision_date,
        term_start,
        term_end: term_end(term_start, term_years),
        certificate_number: certificate_number(decision_date.year(), sequence),
        certificate_status: CertificateStatus::Valid,
        application_id: application_id.to_owned(),
        renewal_id: renewal_id.to_owned(),
        previous_appointment_id: previous.cloned(),
        end_reason: None,
        ended_date: None,
        edition_number,
        created_at: clock.now(),
    };
    sql::insert_appointment(tx, &appointment).await?;
    Ok(appointment)
}

/// Appoints a person (article 7(五)) inside `tx`. The identity document finds an earlier record
/// of the same person, which is reused (its profile replaced by the reviewed one, with the change
/// history) if it holds no running term; otherwise a new record is created. A new unit
/// representative replacing another ends the other's term (D19).
#[allow(clippy::too_many_arguments)]
pub async fn appoint(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    new: NewAppointment,
) -> Result<Appointed, Error> {
    let editions = reference.editions();
    let decided_under = editions.edition_in_force(new.decision_date).map_err(ReferenceError::from)?;
    let starts_under = editions.edition_in_force(new.term_start).map_err(ReferenceError::from)?;
    let (edition_number, term_years) = (decided_under.number, starts_under.appointment.term_years);

    let mut holder = None;
    for index in expert_sql::blind_indexes(key, &new.profile) {
        if let Some(found) = expert_sql::document_holder(tx, &index).await? {
            match &holder {
                Some(h) if *h != found => return Err(Error::IdentityTaken(found.to_string())),
                _ => holder = Some(found),
            }
        }
    }
    let replaced = match &new.replaces {
        Some(id) => Some(replaced_representative(tx, key, id, &new, holder.as_ref()).await?),
        None => None,
    };
    let reason = format!("appointed on application {}", new.application_id);
    let (expert, existing_record) = match holder {
        Some(id) => {
            let current = load(tx, key, &id).await?;
            if StatusGround::Appointed.transition(current.status).is_none() {
                return Err(Error::TransitionRefused { status: current.status.code(), ground: "APPOINTED" });
            }
            let update = ExpertUpdate {
                id: id.clone(),
                patch: new.patch.clone(),
                expected_revision: 0,
                reason: reason.clone(),
                on_behalf: None,
            };
            let expert = experts::update(tx, db, clock, key, caller, command, update).await?;
            let history = periods(&expert.civil_servant);
            if period_on(&history, new.decision_date).map(|p| p.status) != Some(new.civil_servant_status) {
                let entry = NewCivilServantEntry {
                    expert_id: id.clone(),
                    status: new.civil_servant_status,
                    valid_from: new.decision_date,
                    evidence: Evidence { description: reason.clone(), documents: Vec::new() },
                    on_behalf: None,
                };
                experts::record_civil_servant_status(tx, db, clock, caller, command, entry).await?;
            }
            (load(tx, key, &id).await?, true)
        }
        None => {
            let fresh = NewExpert {
                profile: new.profile.clone(),
                civil_servant_status: new.civil_servant_status,
                civil_servant_since: Some(new.decision_date),
            };
            (experts::create(tx, db, clock, key, caller, command, fresh).await?, false)
        }
    };
    let kind = if replaced.is_some() { AppointmentKind::RepresentativeReplacement } else { AppointmentKind::First };
    if let Some(old) = &replaced {
        let ended = old.appointment.as_ref().filter(|a| a.is_running());
        transition(
            tx,
            db,
            clock,
            caller,
            command,
            Transition {
                expert_id: &old.id,
                from: old.status,
                ground: StatusGround::RepresentativeReplaced,
                effective_date: new.term_start,
                appointment: ended,
                term_end: None,
                application_id: None,
                reason: format!("replaced by {} as the unit's representative ({reason})", expert.id),
                incident_id: String::new(),
                evidence: Evidence::default(),
                on_behalf: None,
            },
        )
        .await?;
    }
    let previous = replaced.as_ref().and_then(|r| r.appointment.as_ref()).map(|a| &a.id);
    let appointment = new_term(
        tx,
        clock,
        &expert,
        kind,
        new.decision_date,
        new.term_start,
        term_years,
        edition_number,
        &new.application_id,
        "",
        previous,
    )
    .await?;
    transition(
        tx,
        db,
        clock,
        caller,
        command,
        Transition {
            expert_id: &expert.id,
            from: expert.status,
            ground: StatusGround::Appointed,
            effective_date: new.term_start,
            appointment: Some(&appointment),
            term_end: Some(appointment.term_end),
            application_id: Some(&new.application_id),
            reason,
            incident_id: String::new(),
            evidence: Evidence::default(),
            on_behalf: None,
        },
    )
    .await?;
    let expert = load(tx, key, &expert.id).await?;
    Ok(Appointed { expert, appointment, existing_record })
}

/// A term the bureau decided before this system existed, brought by ImportExperts with its
/// certificate number as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTerm {
    pub certificate_number: String,
    pub decision_date: NaiveDate,
    pub term_start: NaiveDate,
    /// 1 for a first appointment, 2 and up for renewals.
    pub term_number: i32,
}

/// The year and sequence of a certificate number this registry would issue (`JMSE-2022-00017`):
/// exactly the pattern of [`certificate_number`] with a 5-digit sequence from 1. Anything else
/// (`JMSE-2022-17`, a sequence of more digits) is a foreign number that says nothing about this
/// registry's counter.
pub fn certificate_sequence(number: &str) -> Option<(i32, i64)> {
    let rest = number.strip_prefix("JMSE-")?;
    let (year, sequence) = rest.split_once('-')?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if sequence.len() != 5 || !sequence.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, sequence): (i32, i64) = (year.parse().ok()?, sequence.parse().ok()?);
    if sequence < 1 || certificate_number(year, sequence) != number {
        return None;
    }
    Some((year, sequence))
}

/// The counter an imported certificate number raises: one of this registry's own pattern
/// ([`certificate_sequence`]) of a year not after `today`'s; a future year is foreign too.
pub fn imported_certificate_sequence(number: &str, today: NaiveDate) -> Option<(i32, i64)> {
    certificate_sequence(number).filter(|(year, _)| *year <= today.year())
}

/// Records an existing term of a freshly created expert inside `tx`: the term (kind IMPORTED,
/// its end per D11 from the edition in force on its first day) with its certificate as issued,
/// and the APPOINTED status change (queued for dispatch like any other, D17). A certificate
/// number in this registry's own pattern raises that year's counter so later numbers follow it.
/// A term whose last day has passed is ended by the lifecycle pass (article 11) like any other.
#[allow(clippy::too_many_arguments)]
pub async fn record_existing_term(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    expert: &Expert,
    term: &ExistingTerm,
) -> Result<Appointment, Error> {
    let editions = reference.editions();
    let decided_under = editions.edition_in_force(term.decision_date).map_err(ReferenceError::from)?;
    let starts_under = editions.edition_in_force(term.term_start).map_err(ReferenceError::from)?;
    if let Some((year, sequence)) = imported_certificate_sequence(&term.certificate_number, shanghai_today(clock)) {
        sql::raise_certificate_sequence(tx, year, sequence).await?;
    }
    let appointment = Appointment {
        id: AppointmentId::generate(),
        expert_id: expert.id.clone(),
        term_number: term.term_number,
        kind: AppointmentKind::Imported,
        decision_date: term.decision_date,
        term_start: term.term_start,
        term_end: term_end(term.term_start, starts_under.appointment.term_years),
        certificate_number: term.certificate_number.clone(),
        certificate_status: CertificateStatus::Valid,
        application_id: String::new(),
        renewal_id: String::new(),
        previous_appointment_id: None,
        end_reason: None,
        ended_date: None,
        edition_number: decided_under.number,
        created_at: clock.now(),
    };
    sql::insert_appointment(tx, &appointment).await?;
    transition(
        tx,
        db,
        clock,
        caller,
        command,
        Transition {
            expert_id: &expert.id,
            from: expert.status,
            ground: StatusGround::Appointed,
            effective_date: term.term_start,
            appointment: Some(&appointment),
            term_end: Some(appointment.term_end),
            application_id: None,
            reason: format!("imported term {} (certificate {})", term.term_number, term.certificate_number),
            incident_id: String::new(),
            evidence: Evidence::default(),
            on_behalf: None,
        },
    )
    .await?;
    Ok(appointment)
}

/// The unit representative a new appointment replaces: a serving unit representative of the same
/// unit, and not the person being appointed.
async fn replaced_representative(
    tx: &mut Transaction<'static, Any>,
    key: &PersonalDataKey,
    id: &ExpertId,
    new: &NewAppointment,
    holder: Option<&ExpertId>,
) -> Result<Expert, Error> {
    let old = load(tx, key, id)
        .await
        .map_err(|_| Error::Invalid(vec![("replaces_expert_id".into(), "names no expert".into())]))?;
    if holder == Some(id) {
        return Err(Error::ReplacementRefused("a representative cannot replace themself".into()));
    }
    let unit = |e: &crate::domain::Profile| e.represented_unit.as_ref().map(crate::domain::Organisation::key);
    if new.profile.kind != ExpertKind::UnitRepresentative || old.profile.kind != ExpertKind::UnitRepresentative {
        return Err(Error::ReplacementRefused(
            "only a unit representative replaces a unit representative (D19)".into(),
        ));
    }
    if unit(&old.profile) != unit(&new.profile) {
        return Err(Error::ReplacementRefused("the replaced representative represents another unit (D19)".into()));
    }
    if !matches!(old.status, ExpertStatus::Active | ExpertStatus::Suspended) {
        return Err(Error::ReplacementRefused(format!(
            "the replaced representative is {} and holds no term to end",
            old.status.code()
        )));
    }
    Ok(old)
}

/// Starts the next term (article 11, D11) inside `tx`: within the renewal window before the
/// current term ends, with the 6(四) re-check and any re-verified categories recorded on the
/// profile.
#[allow(clippy::too_many_arguments)]
pub async fn renew(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    renewal: Renewal,
) -> Result<Appointed, Error> {
    let id = &renewal.expert_id;
    // Takes the expert's row lock first, so two renewals of one expert run one after the other.
    if !expert_sql::touch_expert(tx, id, None, clock.now()).await? {
        return Err(Error::ExpertNotFound(id.to_string()));
    }
    let expert = load(tx, key, id).await?;
    let current = expert.appointment.clone().filter(Appointment::is_running).ok_or(Error::NoRunningTerm("renew"))?;
    if StatusGround::Renewed.transition(expert.status).is_none() {
        return Err(Error::TransitionRefused { status: expert.status.code(), ground: "RENEWED" });
    }
    let editions = reference.editions();
    let decided_under = editions.edition_in_force(renewal.decision_date).map_err(ReferenceError::from)?;
    let opens = current.term_end - Duration::days(i64::from(decided_under.appointment.renewal_window_days));
    if renewal.decision_date < opens || renewal.decision_date > current.term_end {
        return Err(Error::OutsideRenewalWindow {
            opens: opens.to_string(),
            ends: current.term_end.to_string(),
            decided: renewal.decision_date.to_string(),
        });
    }
    let start = current.term_end + Duration::days(1);
    let starts_under = editions.edition_in_force(start).map_err(ReferenceError::from)?;
    let (edition_number, term_years) = (decided_under.number, starts_under.appointment.term_years);

    let mut conditions: Vec<_> =
        expert.profile.conditions.iter().filter(|c| c.condition != renewal.clean_record.condition).cloned().collect();
    conditions.push(renewal.clean_record.clone());
    let patch =
        ProfilePatch { conditions: Some(conditions), categories: renewal.categories.clone(), ..Default::default() };
    let reason = format!("renewed on renewal {}", renewal.renewal_id);
    let update = ExpertUpdate { id: id.clone(), patch, expected_revision: 0, reason: reason.clone(), on_behalf: None };
    let expert = experts::update(tx, db, clock, key, caller, command, update).await?;
    sql::end_appointment(
        tx,
        &current.id,
        crate::domain::TermEndReason::Renewed,
        current.term_end,
        CertificateStatus::Valid,
    )
    .await?;
    let appointment = new_term(
        tx,
        clock,
        &expert,
        AppointmentKind::Renewal,
        renewal.decision_date,
        start,
        term_years,
        edition_number,
        "",
        &renewal.renewal_id,
        Some(&current.id),
    )
    .await?;
    transition(
        tx,
        db,
        clock,
        caller,
        command,
        Transition {
            expert_id: id,
            from: expert.status,
            ground: StatusGround::Renewed,
            effective_date: start,
            appointment: Some(&appointment),
            term_end: Some(appointment.term_end),
            application_id: None,
            reason,
            incident_id: String::new(),
            evidence: Evidence::default(),
            on_behalf: None,
        },
    )
    .await?;
    let expert = load(tx, key, id).await?;
    Ok(Appointed { expert, appointment, existing_record: true })
}

/// Suspends, reinstates, retires or terminates an expert inside `tx` (articles 4, 12; D17).
#[allow(clippy::too_many_arguments)]
pub async fn change_status(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    request: StatusRequest,
) -> Result<Changed, Error> {
    let id = &request.expert_id;
    require_own(caller, id)?;
    if !expert_sql::touch_expert(tx, id, None, clock.now()).await? {
        return Err(Error::ExpertNotFound(id.to_string()));
    }
    let expert = load(tx, key, id).await?;
    let running = expert.appointment.as_ref().filter(|a| a.is_running());
    if request.ground.term_end_reason().is_some()
        && running.is_none()
        && request.ground.transition(expert.status).is_some()
    {
        return Err(Error::NoRunningTerm("end"));
    }
    let change = transition(
        tx,
        db,
        clock,
        caller,
        command,
        Transition {
            expert_id: id,
            from: expert.status,
            ground: request.ground,
            effective_date: request.effective_date,
            appointment: running.or(expert.appointment.as_ref()),
            term_end: None,
            application_id: None,
            reason: request.reason,
            incident_id: request.incident_id,
            evidence: request.evidence,
            on_behalf: request.on_behalf,
        },
    )
    .await?;
    let expert = load(tx, key, id).await?;
    Ok(Changed { expert, change })
}

/// A status change made by a lifecycle pass inside `tx`, reading only the expert's status and
/// running term (no personal data, so the pass needs no key). `None` when the expert is no longer
/// in a status the ground applies to (the pass then has nothing to do).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn lifecycle_change(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    expert_id: &ExpertId,
    ground: StatusGround,
    effective_date: NaiveDate,
    reason: String,
) -> Result<Option<StatusChange>, Error> {
    if !expert_sql::touch_expert(tx, expert_id, None, clock.now()).await? {
        return Err(Error::ExpertNotFound(expert_id.to_string()));
    }
    let from = sql::expert_status(tx, expert_id).await?.ok_or_else(|| Error::ExpertNotFound(expert_id.to_string()))?;
    if ground.transition(from).is_none() {
        return Ok(None);
    }
    let running = sql::running_appointment(tx, expert_id).await?;
    if ground.term_end_reason().is_some() && running.is_none() {
        return Ok(None);
    }
    let change = transition(
        tx,
        db,
        clock,
        caller,
        command,
        Transition {
            expert_id,
            from,
            ground,
            effective_date,
            appointment: running.as_ref(),
            term_end: None,
            application_id: None,
            reason,
            incident_id: String::new(),
            evidence: Evidence::default(),
            on_behalf: None,
        },
    )
    .await?;
    Ok(Some(change))
}

/// One page of terms. An EXPERT sees only their own (the filter defaults to them).
pub async fn list(
    db: &Db,
    caller: &Caller,
    mut filter: AppointmentFilter,
    today: NaiveDate,
    page: &Page,
) -> Result<(Vec<Appointment>, Option<String>), Error> {
    if caller.role == Role::Expert {
        let own = caller.expert_id.as_deref().and_then(ExpertId::parse);
        let id = filter.expert_id.clone().or(own).ok_or_else(|| Error::ExpertNotFound(String::new()))?;
        require_own(caller, &id)?;
        filter.expert_id = Some(id);
    }
    let mut conn = snapshot(db).await?;
    let items = sql::list_appointments(&mut conn, &filter, today, &page.probe()).await?;
    Ok(page.finish(items, sql::appointment_token))
}

/// One page of status changes, oldest first. An EXPERT sees only their own.
pub async fn list_changes(
    db: &Db,
    caller: &Caller,
    mut filter: StatusChangeFilter,
    page: &Page,
) -> Result<(Vec<StatusChange>, Option<String>), Error> {
    if caller.role == Role::Expert {
        let own = caller.expert_id.as_deref().and_then(ExpertId::parse);
        let id = filter.expert_id.clone().or(own).ok_or_else(|| Error::ExpertNotFound(String::new()))?;
        require_own(caller, &id)?;
        filter.expert_id = Some(id);
    }
    let mut conn = snapshot(db).await?;
    let items = sql::list_status_changes(&mut conn, &filter, &page.probe()).await?;
    Ok(page.finish(items, |c| c.id.to_string()))
}

/// A term and its expert, for the certificate; an EXPERT reaches only their own.
pub async fn certificate(
    db: &Db,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &AppointmentId,
) -> Result<(Appointment, Expert), Error> {
    let mut conn = snapshot(db).await?;
    let appointment =
        sql::get_appointment(&mut conn, id).await?.ok_or_else(|| Error::AppointmentNotFound(id.to_string()))?;
    if require_own(caller, &appointment.expert_id).is_err() {
        return Err(Error::AppointmentNotFound(id.to_string()));
    }
    let expert = load(&mut conn, key, &appointment.expert_id).await?;
    Ok((appointment, expert))
}

/// The printable 任用证书 as self-contained HTML: the holder's name, the certificate number, the
/// term and the issuing bureau; an expired or revoked certificate carries that state across it.
pub fn render_certificate(appointment: &Appointment, expert: &Expert, today: NaiveDate) -> String {
    let state = match appointment.certificate_on(today) {
        CertificateStatus::Valid => "",
        CertificateStatus::Expired => "已失效 EXPIRED",
        CertificateStatus::Revoked => "已撤销 REVOKED",
    };
    let stamp = if state.is_empty() { String::new() } else { format!("<div class=\"state\">{state}</div>") };
    let day = |d: NaiveDate| format!("{}年{}月{}日", d.year(), d.month(), d.day());
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>任用证书 {number}</title>\
         <style>body{{font-family:serif;text-align:center;margin:4em}}h1{{letter-spacing:.5em}}\
         .state{{position:fixed;top:40%;left:0;right:0;font-size:4em;color:#c00;opacity:.5;transform:rotate(-20deg)}}\
         </style></head><body>{stamp}<h1>任用证书</h1>\
         <p>兹聘任 <strong>{name}</strong> 为江门市职业技能培训和评价质量社会监督专家。</p>\
         <p>任期：{start} 至 {end}（第 {term} 届任期）</p>\
         <p>证书编号：{number}</p>\
         <p>江门市人力资源和社会保障局<br>{decided}</p></body></html>\n",
        number = escape(&appointment.certificate_number),
        name = escape(&expert.profile.name),
        start = day(appointment.term_start),
        end = day(appointment.term_end),
        term = appointment.term_number,
        decided = day(appointment.decision_date),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::{escape, imported_certificate_sequence as certificate_sequence};

    #[test]
    fn only_the_registrys_own_certificate_pattern_moves_the_counter() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(certificate_sequence("JMSE-2022-00017", today), Some((2022, 17)));
        assert_eq!(certificate_sequence("JMSE-2026-99999", today), Some((2026, 99_999)));
        for foreign in [
            "JMSE-2026-9223372036854775807",
            "JMSE-2026-99999999999999999999",
            "JMSE-2026-1",
            "JMSE-2026-0001",
            "JMSE-2026-000001",
            "JMSE-2026-00000",
            "JMSE-2026-+0001",
            "JMSE-2027-00001",
            "JMSE-+202-00001",
            "JMSE-0999-00001x",
            "JMSE-2026-00001 ",
            "jmse-2026-00001",
            "江门监督2022第17号",
        ] {
            assert_eq!(certificate_sequence(foreign, today), None, "{foreign}");
        }
    }

    #[test]
    fn certificate_text_is_escaped() {
        assert_eq!(escape("<b>李&明</b>\"'"), "&lt;b&gt;李&amp;明&lt;/b&gt;&quot;&#39;");
    }
}
