//! D21: the 5-year warning on re-applying after termination under article 12(一)(二).
//!
//! At SubmitApplication recruitment asks the registry (GetReapplicationFlags, with its SERVICE
//! token and the acting user) about the applicant's identity document, before its transaction,
//! and stores the answer with the submission: a resubmission asks again and the new answer
//! replaces the old one, acknowledgement included. A RECENTLY_TERMINATED flag is a warning, not a
//! block: the reviewer acknowledges it (AcknowledgeReapplicationWarning, with a note) and only
//! then may the review pass. Without a registry peer configured (an embedded setup with no
//! peers) no check is made and the application carries none; with one configured, a registry
//! that cannot answer makes the submission UNAVAILABLE, so no application skips the check.

use chrono::NaiveDate;
use prost::Message;
use sqlx::{Any, AnyConnection, Row, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, SharedClock,
    audit::{self, Change},
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    convert::{date, timestamp},
    idempotency::Command,
    personal::PersonalDataKey,
    storage::{format_instant, parse_instant},
    telemetry::PropagateTrace,
};
use supervision_proto::{
    common, recruitment as pb,
    registry::{self as rpb, registry_service_client::RegistryServiceClient},
};
use tonic::{Status, metadata::MetadataValue, transport::Channel};

use crate::{domain::ApplicationId, error::Error};

/// The most characters of an acknowledgement note.
const MAX_NOTE_CHARS: usize = 1000;

/// The registry as recruitment reaches it synchronously.
#[derive(Debug, Clone)]
pub struct RegistryPeer {
    pub channel: Channel,
    pub service_token: String,
    /// The deadline of each call (`call`); the calls are not retried here: nothing was written
    /// yet, and the client retries with the same `request_id`.
    pub timeouts: supervision_kit::client::PeerTimeouts,
}

/// Asks the registry about `identity` on `as_of`, for `actor`.
pub async fn ask(
    peer: &RegistryPeer,
    actor: &Actor,
    identity: common::IdentityDocument,
    as_of: NaiveDate,
) -> Result<rpb::GetReapplicationFlagsResponse, Status> {
    let mut request =
        tonic::Request::new(rpb::GetReapplicationFlagsRequest { identity: Some(identity), as_of: Some(date(as_of)) });
    let bearer = MetadataValue::try_from(format!("Bearer {}", peer.service_token))
        .map_err(|_| Status::internal("the SERVICE token is not a header value"))?;
    request.metadata_mut().insert(AUTHORIZATION, bearer);
    request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(actor)));
    request.set_timeout(peer.timeouts.call);
    let mut client = RegistryServiceClient::with_interceptor(peer.channel.clone(), PropagateTrace);
    let asked = client.get_reapplication_flags(request);
    match supervision_kit::client::deadline(peer.timeouts.call, "GetReapplicationFlags", asked).await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "GetReapplicationFlags failed");
            Err(Status::unavailable(format!(
                "the registry could not be asked about the applicant's past (D21): {:?}: {}; nothing was \
                 submitted, retry with the same request_id",
                status.code(),
                status.message()
            )))
        }
    }
}

fn needs_acknowledgement(flags: &[rpb::ReapplicationFlag]) -> bool {
    flags.iter().any(|f| f.kind == rpb::ReapplicationFlagKind::RecentlyTerminated as i32)
}

fn encode_flags(flags: &[rpb::ReapplicationFlag]) -> String {
    serde_json::to_string(&flags.iter().map(|f| hex::encode(f.encode_to_vec())).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

fn corrupt(id: &str, problem: impl std::fmt::Display) -> Error {
    Error::Store(crate::store::StoreError::Corrupt { id: id.to_owned(), problem: problem.to_string() })
}

/// Stores the registry's answer for the submission just made, replacing an earlier one, with an
/// audit entry when there is anything to report.
#[allow(clippy::too_many_arguments)]
pub async fn record_check(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    application_id: &ApplicationId,
    answer: &rpb::GetReapplicationFlagsResponse,
) -> Result<(), Error> {
    let now = clock.now();
    sqlx::query("DELETE FROM reapplication_checks WHERE application_id = $1")
        .bind(application_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO reapplication_checks (application_id, former_expert_id, flags_json, checked_at, \
         acknowledged_by_json, acknowledged_at, note) VALUES ($1, $2, $3, $4, '', '', '')",
    )
    .bind(application_id.as_str())
    .bind(&answer.expert_id)
    .bind(encode_flags(&answer.flags))
    .bind(format_instant(now))
    .execute(&mut **tx)
    .await?;
    if !answer.flags.is_empty() {
        let kinds: Vec<&str> = answer
            .flags
            .iter()
            .map(|f| rpb::ReapplicationFlagKind::try_from(f.kind).map_or("UNKNOWN", |k| k.as_str_name()))
            .collect();
        let change = Change {
            method: command.method,
            request_id: &command.request_id,
            entity_type: "application",
            entity_id: application_id.as_str(),
            action: "reapplication_check",
            before: None,
            after: Some(serde_json::json!({
                "former_expert_id": answer.expert_id,
                "flags": kinds,
                "needs_acknowledgement": needs_acknowledgement(&answer.flags),
            })),
        };
        audit::append(tx, db.backend(), clock, caller, change).await?;
    }
    Ok(())
}

/// The stored check of an application, if one was made.
pub async fn load(conn: &mut AnyConnection, application_id: &str) -> Result<Option<pb::ReapplicationCheck>, Error> {
    let Some(row) = sqlx::query("SELECT * FROM reapplication_checks WHERE application_id = $1")
        .bind(application_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let text = |c: &str| -> Result<String, Error> { row.try_get::<String, _>(c).map_err(Error::from) };
    let hexes: Vec<String> = serde_json::from_str(&text("flags_json")?).map_err(|e| corrupt(application_id, e))?;
    let flags = hexes
        .iter()
        .map(|h| {
            let bytes = hex::decode(h).map_err(|e| corrupt(application_id, e))?;
            rpb::ReapplicationFlag::decode(bytes.as_slice()).map_err(|e| corrupt(application_id, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let instant = |s: String| -> Result<Option<prost_types::Timestamp>, Error> {
        if s.is_empty() {
            Ok(None)
        } else {
            parse_instant(&s).map(|t| Some(timestamp(t))).map_err(|e| corrupt(application_id, e))
        }
    };
    let by = text("acknowledged_by_json")?;
    let acknowledged_by = if by.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Actor>(&by).map_err(|e| corrupt(application_id, e))?.to_proto())
    };
    Ok(Some(pb::ReapplicationCheck {
        former_expert_id: text("former_expert_id")?,
        flags,
        check_time: instant(text("checked_at")?)?,
        acknowledged_by,
        acknowledge_time: instant(text("acknowledged_at")?)?,
        acknowledge_note: text("note")?,
    }))
}

/// Sets the application's `reapplication` for staff and auditors (the applicant does not see
/// the bureau's notes on their past).
pub async fn stamp(db: &Db, caller: &Caller, application: &mut pb::Application) -> Result<(), Error> {
    if caller.role == supervision_kit::Role::Applicant {
        return Ok(());
    }
    let mut conn = db.pool().acquire().await?;
    application.reapplication = load(&mut conn, &application.id).await?;
    Ok(())
}

/// Refuses a passing conclusion while a RECENTLY_TERMINATED warning is unacknowledged.
pub async fn require_acknowledged(tx: &mut Transaction<'static, Any>, id: &ApplicationId) -> Result<(), Status> {
    if let Some(check) = load(tx, id.as_str()).await?
        && needs_acknowledgement(&check.flags)
        && check.acknowledged_by.is_none()
    {
        return Err(Status::failed_precondition(format!(
            "application {id}: the applicant was terminated under article 12(一) or 12(二) within 5 years (D21); \
             a reviewer acknowledges the warning (AcknowledgeReapplicationWarning) before the review passes"
        )));
    }
    Ok(())
}

/// Validates an AcknowledgeReapplicationWarning.
pub fn acknowledgement(req: &pb::AcknowledgeReapplicationWarningRequest) -> Result<(ApplicationId, String), Status> {
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "must be an application id (app_...)");
    }
    let note = req.note.trim().to_owned();
    if note.is_empty() {
        v.add("note", "say what the reviewer considered (D21)");
    } else if note.chars().count() > MAX_NOTE_CHARS {
        v.add("note", format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    v.check()?;
    Ok((id.expect("checked above"), note))
}

/// Records the reviewer's acknowledgement of the warning on the application's current check.
#[allow(clippy::too_many_arguments)]
pub async fn acknowledge(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &ApplicationId,
    note: &str,
) -> Result<(), Status> {
    let application = crate::store::applications::get_application(tx, key, id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::ApplicationNotFound(id.to_string()))?;
    if application.submitted_by_subject == caller.subject || application.created_by.subject == caller.subject {
        return Err(Status::permission_denied(
            "the reviewer is not who entered or submitted the application (article 7(三))",
        ));
    }
    let check = load(tx, id.as_str()).await?;
    let Some(check) = check.filter(|c| needs_acknowledgement(&c.flags)) else {
        return Err(Status::failed_precondition(format!(
            "application {id} carries no re-application warning to acknowledge"
        )));
    };
    if check.acknowledged_by.is_some() {
        return Err(Status::failed_precondition(format!("the warning on application {id} is already acknowledged")));
    }
    let now = clock.now();
    sqlx::query(
        "UPDATE reapplication_checks SET acknowledged_by_json = $1, acknowledged_at = $2, note = $3 \
         WHERE application_id = $4",
    )
    .bind(serde_json::to_string(&caller.actor()).unwrap_or_default())
    .bind(format_instant(now))
    .bind(note)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "application",
        entity_id: id.as_str(),
        action: "acknowledge_reapplication_warning",
        before: Some(serde_json::json!({ "acknowledged": false })),
        after: Some(serde_json::json!({ "acknowledged": true, "note": note })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    Ok(())
}
