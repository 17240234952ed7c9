//! Terms, certificate numbers and status changes: SQL only, portable across SQLite and
//! PostgreSQL.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_kit::{
    Page,
    storage::{format_instant, parse_instant},
};

use super::{
    CorruptRow, StoreError,
    experts::{actor_json, date_text, from_json, json, on_behalf_json, opt_actor, opt_date, opt_on_behalf},
};
use crate::domain::{
    Appointment, AppointmentId, AppointmentKind, CertificateStatus, ExpertId, ExpertStatus, StatusChange,
    StatusChangeId, StatusGround, TermEndReason,
};

/// The columns `status_change_from_row` reads.
macro_rules! status_change_columns {
    () => {
        "id, expert_id, previous_status, status, ground, effective_date, at, reason, incident_id, appointment_id, \
         certificate_status, actor_json, evidence_json, on_behalf_json"
    };
}

/// Takes the next certificate sequence number of `year` under the counter row's lock.
pub async fn next_certificate_sequence(conn: &mut AnyConnection, year: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO certificate_counters (year, last) VALUES ($1, 1) \
         ON CONFLICT (year) DO UPDATE SET last = certificate_counters.last + 1 RETURNING last",
    )
    .bind(year)
    .fetch_one(&mut *conn)
    .await
}

/// Raises the counter of `year` to at least `sequence`, so numbers issued later follow an
/// imported one (`JMSE-<year>-<sequence>`) instead of repeating it.
pub async fn raise_certificate_sequence(conn: &mut AnyConnection, year: i32, sequence: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO certificate_counters (year, last) VALUES ($1, $2) ON CONFLICT (year) DO UPDATE SET \
         last = CASE WHEN certificate_counters.last < excluded.last THEN excluded.last ELSE certificate_counters.last END",
    )
    .bind(year)
    .bind(sequence)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a certificate number is already held by a term.
pub async fn certificate_taken(conn: &mut AnyConnection, number: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM appointments WHERE certificate_number = $1")
        .bind(number)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

pub async fn insert_appointment(conn: &mut AnyConnection, a: &Appointment) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO appointments (",
        appointment_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(a.id.as_str())
    .bind(a.expert_id.as_str())
    .bind(a.term_number)
    .bind(a.kind.code())
    .bind(a.decision_date.to_string())
    .bind(a.term_start.to_string())
    .bind(a.term_end.to_string())
    .bind(&a.certificate_number)
    .bind(a.certificate_status.code())
    .bind(&a.application_id)
    .bind(&a.renewal_id)
    .bind(a.previous_appointment_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(a.end_reason.map(TermEndReason::code).unwrap_or_default())
    .bind(date_text(a.ended_date))
    .bind(i32::try_from(a.edition_number).unwrap_or(i32::MAX))
    .bind(format_instant(a.created_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends a running term: why, on which day, and its certificate's state after.
pub async fn end_appointment(
    conn: &mut AnyConnection,
    id: &AppointmentId,
    reason: TermEndReason,
    ended: NaiveDate,
    certificate: CertificateStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE appointments SET end_reason = $2, ended_date = $3, certificate_status = $4 \
         WHERE id = $1 AND end_reason = ''",
    )
    .bind(id.as_str())
    .bind(reason.code())
    .bind(ended.to_string())
    .bind(certificate.code())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An expert's status, without their personal data.
pub async fn expert_status(conn: &mut AnyConnection, id: &ExpertId) -> Result<Option<ExpertStatus>, StoreError> {
    let row =
        sqlx::query("SELECT status FROM experts WHERE id = $1").bind(id.as_str()).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let code: String = row.try_get("status")?;
    ExpertStatus::from_code(&code)
        .map(Some)
        .ok_or_else(|| CorruptRow { table: "experts", id: id.to_string(), problem: format!("status {code}") }.into())
}

/// The expert's term that still runs (not ended early, not renewed), if any.
pub async fn running_appointment(conn: &mut AnyConnection, id: &ExpertId) -> Result<Option<Appointment>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        appointment_columns!(),
        " FROM appointments WHERE expert_id = $1 AND end_reason = '' ORDER BY term_number DESC LIMIT 1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| appointment_from_row(&r)).transpose()
}

pub async fn get_appointment(conn: &mut AnyConnection, id: &AppointmentId) -> Result<Option<Appointment>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", appointment_columns!(), " FROM appointments WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| appointment_from_row(&r)).transpose()
}

/// Filters of ListAppointments.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub expert_id: Option<ExpertId>,
    pub term_end_from: Option<NaiveDate>,
    pub term_end_to: Option<NaiveDate>,
    /// As shown on `today` (a valid certificate past its term reads expired).
    pub certificate_status: Option<CertificateStatus>,
}

/// The page token of ListAppointments: `<expert id>/<term number>` of the last term shown.
pub fn appointment_token(a: &Appointment) -> String {
    format!("{}/{}", a.expert_id, a.term_number)
}

/// Whether `token` has the shape of [`appointment_token`].
pub fn parse_appointment_token(token: &str) -> Option<(ExpertId, i32)> {
    let (expert, term) = token.split_once('/')?;
    Some((ExpertId::parse(expert)?, term.parse().ok()?))
}

/// One page of terms, by expert then term number.
pub async fn list_appointments(
    conn: &mut AnyConnection,
    filter: &AppointmentFilter,
    today: NaiveDate,
    page: &Page,
) -> Result<Vec<Appointment>, StoreError> {
    let (after_expert, after_term) =
        page.after.as_deref().and_then(parse_appointment_token).map(|(e, t)| (e.to_string(), t)).unwrap_or_default();
    let rows = sqlx::query(concat!(
        "SELECT ",
        appointment_columns!(),
        " FROM appointments \
         WHERE ($1 = '' OR expert_id > $1 OR (expert_id = $1 AND term_number > $2)) \
           AND ($3 = '' OR expert_id = $3) \
           AND ($4 = '' OR term_end >= $4) \
           AND ($5 = '' OR term_end <= $5) \
           AND ($6 = '' \
                OR ($6 = 'VALID' AND certificate_status = 'VALID' AND term_end >= $7) \
                OR ($6 = 'EXPIRED' AND (certificate_status = 'EXPIRED' \
                    OR (certificate_status = 'VALID' AND term_end < $7))) \
                OR ($6 = 'REVOKED' AND certificate_status = 'REVOKED')) \
         ORDER BY expert_id, term_number LIMIT $8"
    ))
    .bind(after_expert)
    .bind(after_term)
    .bind(filter.expert_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(date_text(filter.term_end_from))
    .bind(date_text(filter.term_end_to))
    .bind(filter.certificate_status.map(CertificateStatus::code).unwrap_or_default())
    .bind(today.to_string())
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(appointment_from_row).collect()
}

/// Sets an expert's status (and, when given, the end of the current term and the application
/// behind the first appointment), moving it to the next revision. `false` if there is no such
/// expert.
pub async fn set_standing(
    conn: &mut AnyConnection,
    id: &ExpertId,
    status: ExpertStatus,
    current_term_end: Option<NaiveDate>,
    application_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE experts SET status = $2, \
         current_term_end = CASE WHEN $3 = '' THEN current_term_end ELSE $3 END, \
         application_id = CASE WHEN $4 = '' OR application_id <> '' THEN application_id ELSE $4 END, \
         revision = revision + 1, updated_at = $5 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(status.code())
    .bind(date_text(current_term_end))
    .bind(application_id.unwrap_or_default())
    .bind(format_instant(at))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_status_change(conn: &mut AnyConnection, c: &StatusChange) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO expert_status_changes (",
        status_change_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(c.id.as_str())
    .bind(c.expert_id.as_str())
    .bind(c.previous_status.code())
    .bind(c.status.code())
    .bind(c.ground.code())
    .bind(c.effective_date.to_string())
    .bind(format_instant(c.at))
    .bind(&c.reason)
    .bind(&c.incident_id)
    .bind(c.appointment_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(c.certificate_status.code())
    .bind(actor_json(Some(&c.actor)))
    .bind(json(&c.evidence))
    .bind(on_behalf_json(c.on_behalf.as_ref()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Filters of ListStatusChanges.
#[derive(Debug, Clone, Default)]
pub struct StatusChangeFilter {
    pub expert_id: Option<ExpertId>,
    pub status: Option<ExpertStatus>,
    pub since: Option<DateTime<Utc>>,
}

/// One page of status changes, oldest first (ids are UUIDv7).
pub async fn list_status_changes(
    conn: &mut AnyConnection,
    filter: &StatusChangeFilter,
    page: &Page,
) -> Result<Vec<StatusChange>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        status_change_columns!(),
        " FROM expert_status_changes \
         WHERE ($1 = '' OR id > $1) AND ($2 = '' OR expert_id = $2) AND ($3 = '' OR status = $3) \
           AND ($4 = '' OR at >= $4) \
         ORDER BY id LIMIT $5"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.expert_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(filter.status.map(ExpertStatus::code).unwrap_or_default())
    .bind(filter.since.map(format_instant).unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(status_change_from_row).collect()
}

pub(crate) fn appointment_from_row(row: &impl super::experts::Columns) -> Result<Appointment, StoreError> {
    let raw_id = row.text("id")?;
    let bad = |problem: String| CorruptRow { table: "appointments", id: raw_id.clone(), problem };
    let text = |col: &str| row.text(col);
    let day = |col: &str| -> Result<NaiveDate, StoreError> {
        Ok(opt_date(&text(col)?).map_err(bad)?.ok_or_else(|| bad(format!("{col} is empty")))?)
    };
    let kind = text("kind")?;
    let certificate = text("certificate_status")?;
    let end_reason = text("end_reason")?;
    let previous = text("previous_appointment_id")?;
    let expert = text("expert_id")?;
    Ok(Appointment {
        id: AppointmentId::parse(&raw_id).ok_or_else(|| bad("id".into()))?,
        expert_id: ExpertId::parse(&expert).ok_or_else(|| bad("expert_id".into()))?,
        term_number: row.int("term_number")?,
        kind: AppointmentKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        decision_date: day("decision_date")?,
        term_start: day("term_start")?,
        term_end: day("term_end")?,
        certificate_number: text("certificate_number")?,
        certificate_status: CertificateStatus::from_code(&certificate)
            .ok_or_else(|| bad(format!("certificate_status {certificate}")))?,
        application_id: text("application_id")?,
        renewal_id: text("renewal_id")?,
        previous_appointment_id: if previous.is_empty() {
            None
        } else {
            Some(AppointmentId::parse(&previous).ok_or_else(|| bad("previous_appointment_id".into()))?)
        },
        end_reason: if end_reason.is_empty() {
            None
        } else {
            Some(TermEndReason::from_code(&end_reason).ok_or_else(|| bad(format!("end_reason {end_reason}")))?)
        },
        ended_date: opt_date(&text("ended_date")?).map_err(bad)?,
        edition_number: u32::try_from(row.int("edition_number")?).map_err(|_| bad("edition_number".into()))?,
        created_at: parse_instant(&text("created_at")?).map_err(|e| bad(format!("created_at: {e}")))?,
    })
}

pub(crate) fn status_change_from_row(row: &AnyRow) -> Result<StatusChange, StoreError> {
    let raw_id: String = row.try_get("id")?;
    let bad = |problem: String| CorruptRow { table: "expert_status_changes", id: raw_id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let status = |col: &str| -> Result<ExpertStatus, StoreError> {
        let code = text(col)?;
        Ok(ExpertStatus::from_code(&code).ok_or_else(|| bad(format!("{col} {code}")))?)
    };
    let ground = text("ground")?;
    let certificate = text("certificate_status")?;
    let appointment = text("appointment_id")?;
    let expert = text("expert_id")?;
    Ok(StatusChange {
        id: StatusChangeId::parse(&raw_id).ok_or_else(|| bad("id".into()))?,
        expert_id: ExpertId::parse(&expert).ok_or_else(|| bad("expert_id".into()))?,
        previous_status: status("previous_status")?,
        status: status("status")?,
        ground: StatusGround::from_code(&ground).ok_or_else(|| bad(format!("ground {ground}")))?,
        effective_date: opt_date(&text("effective_date")?).map_err(bad)?.ok_or_else(|| bad("effective_date".into()))?,
        at: parse_instant(&text("at")?).map_err(|e| bad(format!("at: {e}")))?,
        reason: text("reason")?,
        incident_id: text("incident_id")?,
        appointment_id: if appointment.is_empty() {
            None
        } else {
            Some(AppointmentId::parse(&appointment).ok_or_else(|| bad("appointment_id".into()))?)
        },
        certificate_status: CertificateStatus::from_code(&certificate)
            .ok_or_else(|| bad(format!("certificate_status {certificate}")))?,
        actor: opt_actor(&text("actor_json")?).map_err(bad)?.ok_or_else(|| bad("actor".into()))?,
        evidence: from_json(&text("evidence_json")?).map_err(bad)?,
        on_behalf: opt_on_behalf(&text("on_behalf_json")?).map_err(bad)?,
    })
}
