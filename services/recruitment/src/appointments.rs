//! 确定任用 after delivery (article 7(五)): the registry's answer recorded on the decision.
//!
//! DecideAppointments writes AppointExpert to the outbox in the decision's transaction, keyed by
//! the application id; the kit's relay delivers it until the registry acknowledges. The relay
//! keeps no answers, so once a row is delivered the [`Confirmer`] sends the very same request
//! (same `request_id`, same content, same SERVICE token) again: the registry replays its stored
//! answer instead of appointing a second time, and the expert id, the term and the certificate
//! number are recorded on the decision, the application becomes APPOINTED, and the audit log
//! names the user who decided. Several replicas may confirm side by side: the update is fenced
//! on the decision still being PENDING.

use std::time::Duration;

use chrono::NaiveDate;
use prost::Message;
use sqlx::{Row, any::AnyRow};
use supervision_kit::{
    Bureau, Caller, Db, FieldViolations, Page, Role, SharedClock, Shutdown,
    audit::{self, Change},
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    convert::{date, timestamp},
    redact::redact,
    storage::{format_instant, parse_instant},
    telemetry::PropagateTrace,
    vocab::is_prefixed_id,
};
use supervision_proto::{
    common, recruitment as pb,
    registry::{self as rpb, registry_service_client::RegistryServiceClient},
};
use tonic::{Status, metadata::MetadataValue, transport::Channel};

use crate::{
    domain::{ApplicationId, ApplicationStatus},
    error::Error,
    publicity::APPOINT_EXPERT,
    store::applications as sql,
};

/// How often delivered decisions are confirmed.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(1);
/// Decisions confirmed per pass.
const BATCH: i64 = 16;
/// How long a decision or renewal whose confirmation failed waits before it is tried again:
/// doubled per failure from one pass up to a minute, with full jitter. Only idempotent calls
/// are retried so: the very request the relay delivered, whose `request_id` the registry replays.
const RETRY: supervision_kit::client::Backoff =
    supervision_kit::client::Backoff::new(CONFIRM_EVERY, Duration::from_secs(60));

fn corrupt(id: &str, problem: impl std::fmt::Display) -> Error {
    Error::Store(crate::store::StoreError::Corrupt { id: id.to_owned(), problem: problem.to_string() })
}

fn text(row: &AnyRow, column: &str) -> Result<String, Error> {
    row.try_get::<String, _>(column).map_err(Error::from)
}

fn parse_day(id: &str, column: &str, s: &str) -> Result<Option<NaiveDate>, Error> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<NaiveDate>().map(Some).map_err(|e| corrupt(id, format!("{column}: {e}")))
}

const DECISION_COLUMNS: &str = "d.id, d.application_id, d.decision_date, d.term_start, d.delivery, d.decided_by_json, \
     d.decided_at, d.expert_id, d.appointment_id, d.certificate_number, d.term_first, d.term_last, d.delivered_at, \
     COALESCE(o.last_error, '') AS last_error";

const DECISION_FROM: &str = "appointment_decisions d LEFT JOIN kit_outbox o ON o.destination = 'registry' \
     AND o.method = '/supervision.registry.v1.RegistryService/AppointExpert' AND o.idempotency_key = d.application_id";

fn decision_from_row(row: &AnyRow) -> Result<pb::AppointmentDecision, Error> {
    let id = text(row, "id")?;
    let delivered = text(row, "delivery")? == "DELIVERED";
    let decided_by: Actor =
        serde_json::from_str(&text(row, "decided_by_json")?).map_err(|e| corrupt(&id, format!("decided_by: {e}")))?;
    let decided_at = parse_instant(&text(row, "decided_at")?).map_err(|e| corrupt(&id, e))?;
    let delivered_at = text(row, "delivered_at")?;
    let first = parse_day(&id, "term_first", &text(row, "term_first")?)?;
    let last = parse_day(&id, "term_last", &text(row, "term_last")?)?;
    Ok(pb::AppointmentDecision {
        application_id: text(row, "application_id")?,
        decision_date: parse_day(&id, "decision_date", &text(row, "decision_date")?)?.map(date),
        term_start: parse_day(&id, "term_start", &text(row, "term_start")?)?.map(date),
        delivery: if delivered { pb::DeliveryStatus::Delivered } else { pb::DeliveryStatus::Pending } as i32,
        last_delivery_error: if delivered { String::new() } else { text(row, "last_error")? },
        expert_id: text(row, "expert_id")?,
        appointment_id: text(row, "appointment_id")?,
        certificate_number: text(row, "certificate_number")?,
        term: first.map(|f| common::DateRange { start: Some(date(f)), end: last.map(date) }),
        decided_by: Some(decided_by.to_proto()),
        decide_time: Some(timestamp(decided_at)),
        deliver_time: if delivered_at.is_empty() {
            None
        } else {
            Some(timestamp(parse_instant(&delivered_at).map_err(|e| corrupt(&id, e))?))
        },
        id,
    })
}

/// A validated ListAppointmentDecisions.
#[derive(Debug, Clone)]
pub struct DecisionFilter {
    pub delivery: Option<pb::DeliveryStatus>,
    pub application_id: Option<String>,
    pub page: Page,
}

pub fn decision_filter(req: &pb::ListAppointmentDecisionsRequest) -> Result<DecisionFilter, Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "apd_"), &mut v);
    let delivery = match pb::DeliveryStatus::try_from(req.delivery) {
        Ok(pb::DeliveryStatus::Unspecified) => None,
        Ok(d) => Some(d),
        Err(_) => {
            v.add("delivery", "is not a delivery status");
            None
        }
    };
    let application_id = if req.application_id.is_empty() {
        None
    } else if ApplicationId::parse(&req.application_id).is_some() {
        Some(req.application_id.clone())
    } else {
        v.add("application_id", "must be an application id (app_...)");
        None
    };
    v.check()?;
    Ok(DecisionFilter { delivery, application_id, page })
}

/// Decisions newest first, with the relay's last error while one is pending.
pub async fn list_decisions(
    db: &Db,
    filter: &DecisionFilter,
) -> Result<(Vec<pb::AppointmentDecision>, Option<String>), Error> {
    let delivery = match filter.delivery {
        Some(pb::DeliveryStatus::Delivered) => "DELIVERED",
        Some(_) => "PENDING",
        None => "",
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DECISION_COLUMNS} FROM {DECISION_FROM} WHERE ($1 = '' OR d.delivery = $1) \
         AND ($2 = '' OR d.application_id = $2) AND ($3 = '' OR d.id < $3) ORDER BY d.id DESC LIMIT $4"
    )))
    .bind(delivery)
    .bind(filter.application_id.as_deref().unwrap_or_default())
    .bind(filter.page.after.as_deref().unwrap_or_default())
    .bind(i64::from(filter.page.size) + 1)
    .fetch_all(db.pool())
    .await?;
    let items = rows.iter().map(decision_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(filter.page.finish(items, |d| d.id.clone()))
}

/// The delivered decision of an application, if any: its expert and certificate number.
pub async fn delivered_of(db: &Db, application_id: &str) -> Result<Option<(String, String)>, Error> {
    let row = sqlx::query(
        "SELECT expert_id, certificate_number FROM appointment_decisions \
         WHERE application_id = $1 AND delivery = 'DELIVERED'",
    )
    .bind(application_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((text(&r, "expert_id")?, text(&r, "certificate_number")?))).transpose()
}

/// Sets an application's `expert_id` and `certificate_number` once its appointment is delivered.
pub async fn stamp(db: &Db, application: &mut pb::Application) -> Result<(), Error> {
    if application.status == pb::ApplicationStatus::Appointed as i32
        && let Some((expert_id, certificate)) = delivered_of(db, &application.id).await?
    {
        application.expert_id = expert_id;
        application.certificate_number = certificate;
    }
    Ok(())
}

/// The caller an audit entry names for a confirmation: the user who decided the appointment.
fn caller_of(actor: &Actor) -> Caller {
    Caller {
        subject: actor.subject.clone(),
        role: Role::from_code(&actor.role).unwrap_or(Role::Service),
        bureau: actor.bureau.as_deref().and_then(Bureau::from_division_code),
        expert_id: None,
        acting_for: Some(actor.clone()),
    }
}

/// Records the registry's answers for delivered appointment decisions.
#[derive(Debug, Clone)]
pub struct Confirmer {
    db: Db,
    clock: SharedClock,
    key: supervision_kit::personal::PersonalDataKey,
    registry: Channel,
    service_token: String,
    /// Each call's deadline (`call`).
    timeouts: supervision_kit::client::PeerTimeouts,
    /// When rows that failed are tried again, by decision or renewal id.
    retries: supervision_kit::client::RetrySchedule,
}

struct Delivered {
    decision_id: String,
    application_id: String,
    payload: Vec<u8>,
    actor_json: String,
}

fn delivered(row: &AnyRow, decision_id: &str) -> Result<Delivered, Error> {
    Ok(Delivered {
        decision_id: decision_id.to_owned(),
        application_id: text(row, "application_id")?,
        payload: row.try_get("payload")?,
        actor_json: text(row, "actor_json")?,
    })
}

impl Confirmer {
    pub fn new(
        db: Db,
        clock: SharedClock,
        key: supervision_kit::personal::PersonalDataKey,
        registry: Channel,
        service_token: String,
    ) -> Self {
        Self {
            db,
            clock,
            key,
            registry,
            service_token,
            timeouts: supervision_kit::client::PeerTimeouts::default(),
            retries: supervision_kit::client::RetrySchedule::new(RETRY),
        }
    }

    /// The same confirmer with these deadlines (`--peer-timeout-seconds`).
    pub fn with_timeouts(mut self, timeouts: supervision_kit::client::PeerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Tries `key` with `attempt` unless it is still waiting after a failure; a failure makes it
    /// wait longer, a success forgets it.
    async fn paced<F>(&self, key: &str, attempt: F) -> Result<bool, Error>
    where
        F: std::future::Future<Output = Result<bool, Error>>,
    {
        if !self.retries.is_due(key) {
            return Ok(false);
        }
        let outcome = attempt.await;
        match &outcome {
            Ok(_) => self.retries.forget(key),
            Err(_) => {
                let wait = self.retries.failed(key);
                tracing::debug!(key, retry_in = ?wait, "confirmation failed; backing off");
            }
        }
        outcome
    }

    /// Confirms until shutdown, every `every`.
    pub fn spawn(self, every: Duration, shutdown: Shutdown) {
        tokio::spawn(async move {
            loop {
                match self.confirm_delivered().await {
                    Ok(n) if n > 0 => tracing::info!(confirmed = n, "appointments confirmed by the registry"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "appointment confirmation pass failed"),
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// One pass: every PENDING decision and renewal whose call the relay has delivered.
    ///
    /// Each row is tried on its own: a row that fails (a registry refusal, a corrupt payload) is
    /// logged and skipped, and the pass goes on through every due row in keyset pages, so a row
    /// that keeps failing never hides the ones after it. Renewals failing do not stop decisions.
    pub async fn confirm_delivered(&self) -> Result<usize, Error> {
        let renewals = self.confirm_renewals().await;
        let decisions = self.confirm_decisions().await;
        match (renewals, decisions) {
            (Ok(r), Ok(d)) => Ok(r + d),
            (Err(err), Ok(d)) => {
                tracing::warn!(error = %redact(&err.to_string()), "renewal confirmation pass failed");
                Ok(d)
            }
            (Ok(r), Err(err)) => {
                if r > 0 {
                    tracing::info!(confirmed = r, "renewals confirmed by the registry");
                }
                Err(err)
            }
            (Err(err), Err(other)) => {
                tracing::warn!(error = %redact(&err.to_string()), "renewal confirmation pass failed");
                Err(other)
            }
        }
    }

    async fn confirm_decisions(&self) -> Result<usize, Error> {
        let mut confirmed = 0;
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT d.id, d.application_id, o.payload, o.actor_json FROM appointment_decisions d \
                 JOIN kit_outbox o ON o.destination = 'registry' AND o.method = $1 \
                 AND o.idempotency_key = d.application_id \
                 WHERE d.delivery = 'PENDING' AND o.delivered_at IS NOT NULL AND d.id > $2 ORDER BY d.id LIMIT $3",
            )
            .bind(APPOINT_EXPERT)
            .bind(&after)
            .bind(BATCH)
            .fetch_all(self.db.pool())
            .await?;
            let full = rows.len() as i64 >= BATCH;
            for row in &rows {
                let decision_id = match text(row, "id") {
                    Ok(id) => id,
                    Err(err) => {
                        // Without its id the page cannot go on past it safely: stop here.
                        tracing::warn!(error = %redact(&err.to_string()), "a delivered decision cannot be read");
                        return Ok(confirmed);
                    }
                };
                after.clone_from(&decision_id);
                let outcome = match delivered(row, &decision_id) {
                    Ok(due) => self.paced(&decision_id, self.confirm_one(&due)).await,
                    Err(err) => Err(err),
                };
                match outcome {
                    Ok(true) => confirmed += 1,
                    Ok(false) => {}
                    Err(err) => tracing::warn!(
                        decision = %decision_id, error = %redact(&err.to_string()), "not confirmed yet"
                    ),
                }
            }
            if !full {
                return Ok(confirmed);
            }
        }
    }

    /// Renewals whose RenewTerm was delivered: the same request again gives the registry's
    /// stored answer, the new term and certificate, recorded on the renewal.
    async fn confirm_renewals(&self) -> Result<usize, Error> {
        let mut confirmed = 0;
        let mut after = String::new();
        loop {
            let page = crate::renewals::delivered_pending(&self.db, &after, BATCH).await?;
            let full = page.len() as i64 >= BATCH;
            for row in page {
                let (id, payload, actor_json) = match row {
                    Ok(row) => row,
                    Err(err) => {
                        tracing::warn!(error = %redact(&err.to_string()), "a delivered renewal cannot be read");
                        return Ok(confirmed);
                    }
                };
                after.clone_from(&id);
                match self.paced(&id, self.confirm_renewal(&id, &payload, &actor_json)).await {
                    Ok(true) => confirmed += 1,
                    Ok(false) => {}
                    Err(err) => tracing::warn!(
                        renewal = %id, error = %redact(&err.to_string()), "renewal not confirmed yet"
                    ),
                }
            }
            if !full {
                return Ok(confirmed);
            }
        }
    }

    async fn confirm_renewal(&self, id: &str, payload: &[u8], actor_json: &str) -> Result<bool, Error> {
        let message =
            rpb::RenewTermRequest::decode(payload).map_err(|e| corrupt(id, format!("outbox payload: {e}")))?;
        let actor: Actor = serde_json::from_str(actor_json).map_err(|e| corrupt(id, format!("actor: {e}")))?;
        let mut request = tonic::Request::new(message);
        let bearer = MetadataValue::try_from(format!("Bearer {}", self.service_token))
            .map_err(|_| corrupt(id, "the service token is not a header value"))?;
        request.metadata_mut().insert(AUTHORIZATION, bearer);
        request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(&actor)));
        request.set_timeout(self.timeouts.call);
        let mut client = RegistryServiceClient::with_interceptor(self.registry.clone(), PropagateTrace);
        let answer = supervision_kit::client::deadline(self.timeouts.call, "RenewTerm", client.renew_term(request))
            .await
            .map_err(|s| Error::Registry(format!("{:?}: {}", s.code(), s.message())))?
            .into_inner();
        crate::renewals::record_delivery(&self.db, &self.clock, id, &caller_of(&actor), &answer)
            .await
            .map_err(|s| Error::Registry(format!("the answer was not recorded: {:?}: {}", s.code(), s.message())))
    }

    async fn confirm_one(&self, d: &Delivered) -> Result<bool, Error> {
        let message = rpb::AppointExpertRequest::decode(d.payload.as_slice())
            .map_err(|e| corrupt(&d.decision_id, format!("outbox payload: {e}")))?;
        let actor: Actor =
            serde_json::from_str(&d.actor_json).map_err(|e| corrupt(&d.decision_id, format!("actor: {e}")))?;
        let mut request = tonic::Request::new(message);
        let bearer = MetadataValue::try_from(format!("Bearer {}", self.service_token))
            .map_err(|_| corrupt(&d.decision_id, "the service token is not a header value"))?;
        request.metadata_mut().insert(AUTHORIZATION, bearer);
        request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(&actor)));
        request.set_timeout(self.timeouts.call);
        let mut client = RegistryServiceClient::with_interceptor(self.registry.clone(), PropagateTrace);
        let answer =
            supervision_kit::client::deadline(self.timeouts.call, "AppointExpert", client.appoint_expert(request))
                .await
                .map_err(|s| Error::Registry(format!("{:?}: {}", s.code(), s.message())))?
                .into_inner();
        let (Some(expert), Some(appointment)) = (answer.expert, answer.appointment) else {
            return Err(Error::Registry("the registry's answer has no expert or appointment".into()));
        };
        let term = appointment.term.unwrap_or_default();
        let day = |d: Option<common::Date>| {
            d.and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        let (first, last) = (day(term.start), day(term.end));
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE appointment_decisions SET delivery = 'DELIVERED', expert_id = $1, appointment_id = $2, \
             certificate_number = $3, term_first = $4, term_last = $5, delivered_at = $6 \
             WHERE id = $7 AND delivery = 'PENDING'",
        )
        .bind(&expert.id)
        .bind(&appointment.id)
        .bind(&appointment.certificate_number)
        .bind(&first)
        .bind(&last)
        .bind(format_instant(now))
        .bind(&d.decision_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // Another replica recorded it first.
            return Ok(false);
        }
        let id = ApplicationId::parse(&d.application_id).ok_or_else(|| corrupt(&d.decision_id, "application id"))?;
        let mut application = sql::get_application(&mut tx, &self.key, &id)
            .await?
            .ok_or_else(|| Error::ApplicationNotFound(d.application_id.clone()))?;
        let before = application.status.code();
        application.status = ApplicationStatus::Appointed;
        application.touch(now);
        sql::update_application(&mut *tx, &self.key, &application).await?;
        let change = Change {
            method: APPOINT_EXPERT,
            request_id: &d.application_id,
            entity_type: "appointment_decision",
            entity_id: &d.decision_id,
            action: "deliver",
            before: Some(serde_json::json!({ "delivery": "PENDING" })),
            after: Some(serde_json::json!({
                "delivery": "DELIVERED",
                "application_id": d.application_id,
                "expert_id": expert.id,
                "appointment_id": appointment.id,
                "certificate_number": appointment.certificate_number,
                "term": [first, last],
                "application_status": [before, application.status.code()],
            })),
        };
        audit::append(&mut tx, self.db.backend(), &self.clock, &caller_of(&actor), change).await?;
        tx.commit().await?;
        Ok(true)
    }
}
