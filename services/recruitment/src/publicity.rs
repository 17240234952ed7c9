//! 公示 (article 7(四), D10), 异议 and 确定任用 (article 7(五)): publicity batches of applications
//! that passed review, objections that hold an application's appointment until resolved, and
//! appointment decisions sent to the registry through the outbox in the same transaction.
//!
//! Each use case is one transaction with an audit entry per change; the SQL is kept here, next
//! to the rules, and is portable across SQLite and PostgreSQL.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyConnection, Row, Transaction, any::AnyRow};
use supervision_kit::{
    Caller, Db, FieldViolations, Page, SharedClock,
    audit::{self, Change},
    auth::Actor,
    convert::{date, optional_date, required_date, timestamp},
    idempotency::Command,
    outbox::{self, Delivery},
    personal::{PersonalDataKey, mask_document},
    storage::{format_instant, parse_instant},
    vocab::{is_prefixed_id, new_prefixed_id},
};
use supervision_proto::{
    common::{self, EligibilityCondition, ExpertCategory},
    recruitment as pb, registry as rpb,
};
use supervision_reference::{Reference, no_edition_status};
use tonic::Status;

use crate::{
    convert::applications as ca,
    domain::{Application, ApplicationId, ApplicationStatus, ReviewTarget, Verdict, Visibility},
    error::Error,
    store::applications as sql,
};

/// The registry's method recruitment's outbox calls for each decision.
pub const APPOINT_EXPERT: &str = "/supervision.registry.v1.RegistryService/AppointExpert";

/// A publicity batch as recruitment keeps it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: String,
    pub title: String,
    pub application_ids: Vec<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub published: bool,
    pub ends_on_non_working_day: bool,
    pub warnings: Vec<String>,
    pub publications: Vec<pb::Publication>,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

impl Batch {
    /// 00:00 Asia/Shanghai after the last day.
    pub fn end_time(&self) -> DateTime<Utc> {
        let next = self.end.succ_opt().unwrap_or(self.end).and_hms_opt(0, 0, 0).expect("midnight exists");
        Utc.from_utc_datetime(&(next - Duration::hours(8)))
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    pub fn status(&self, now: DateTime<Utc>) -> pb::PublicityBatchStatus {
        if !self.published {
            pb::PublicityBatchStatus::Draft
        } else if now < self.end_time() {
            pb::PublicityBatchStatus::Open
        } else {
            pb::PublicityBatchStatus::Ended
        }
    }

    pub fn to_proto(&self, now: DateTime<Utc>) -> pb::PublicityBatch {
        pb::PublicityBatch {
            id: self.id.clone(),
            title: self.title.clone(),
            application_ids: self.application_ids.clone(),
            period: Some(common::DateRange { start: Some(date(self.start)), end: Some(date(self.end)) }),
            days: i32::try_from(self.days()).unwrap_or(i32::MAX),
            ends_on_non_working_day: self.ends_on_non_working_day,
            warnings: self.warnings.clone(),
            status: self.status(now) as i32,
            publications: self.publications.clone(),
            end_time: Some(timestamp(self.end_time())),
            created_by: Some(self.created_by.to_proto()),
            create_time: Some(timestamp(self.created_at)),
        }
    }
}

fn corrupt(id: &str, problem: impl std::fmt::Display) -> Error {
    Error::Store(crate::store::StoreError::Corrupt { id: id.to_owned(), problem: problem.to_string() })
}

fn parse_date(id: &str, col: &str, s: &str) -> Result<NaiveDate, Error> {
    s.parse::<NaiveDate>().map_err(|e| corrupt(id, format!("{col}: {e}")))
}

fn actor_json(a: &Actor) -> String {
    serde_json::to_string(a).unwrap_or_default()
}

fn actor_from_json(id: &str, s: &str) -> Result<Option<Actor>, Error> {
    if s.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(s).map(Some).map_err(|e| corrupt(id, format!("actor: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    (entity_type, entity_id, action): (&str, &str, &str),
    before: Option<serde_json::Value>,
    after: serde_json::Value,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type,
        entity_id,
        action,
        before,
        after: Some(after),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

// --- batches -----------------------------------------------------------------------------------

/// A validated CreatePublicityBatch.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub title: String,
    pub application_ids: Vec<ApplicationId>,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

pub fn new_batch(req: &pb::CreatePublicityBatchRequest) -> Result<NewBatch, Status> {
    let mut v = FieldViolations::new();
    if req.title.trim().is_empty() {
        v.add("title", "is required");
    }
    if req.application_ids.is_empty() {
        v.add("application_ids", "name at least one application that passed review");
    }
    let mut ids = Vec::new();
    for (i, raw) in req.application_ids.iter().enumerate() {
        match ApplicationId::parse(raw) {
            Some(id) if ids.contains(&id) => v.add(format!("application_ids[{i}]"), "is named twice"),
            Some(id) => ids.push(id),
            None => v.add(format!("application_ids[{i}]"), "must be an application id (app_...)"),
        }
    }
    let period = req.period.unwrap_or_default();
    let start = required_date(period.start.as_ref(), "period.start", &mut v);
    let end = required_date(period.end.as_ref(), "period.end", &mut v);
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        v.add("period.end", "must not be before the start");
    }
    v.check()?;
    Ok(NewBatch {
        title: req.title.trim().to_owned(),
        application_ids: ids,
        start: start.expect("checked"),
        end: end.expect("checked"),
    })
}

/// Drafts a batch of PASSED_REVIEW applications for at least the edition's publicity days,
/// counted in calendar days including the first (D10), warning when the last day is not a
/// working day.
#[allow(clippy::too_many_arguments)]
pub async fn create_batch(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    new: NewBatch,
    today: NaiveDate,
) -> Result<Batch, Status> {
    let edition = reference.editions().edition_in_force(today).map_err(|e| no_edition_status(&e))?;
    let needed = i64::from(edition.appointment.publicity_days);
    let days = (new.end - new.start).num_days() + 1;
    let mut v = FieldViolations::new();
    if days < needed {
        v.add(
            "period",
            format!("runs {days} calendar days including the first; publicity lasts at least {needed} (D10)"),
        );
    }
    if new.start < today {
        v.add("period.start", format!("must not be before today ({today})"));
    }
    v.check()?;
    let mut problems = Vec::new();
    for id in &new.application_ids {
        let application = sql::get_application(tx, key, id).await.map_err(Error::from)?;
        match application {
            None => problems.push(format!("{id}: not found")),
            Some(a) if a.status != ApplicationStatus::PassedReview => {
                problems.push(format!("{id}: is {}, not PASSED_REVIEW", a.status.code()))
            }
            Some(_) if batch_of(tx, id.as_str()).await.map_err(Error::from)?.is_some() => {
                problems.push(format!("{id}: is already in a publicity batch"))
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(Status::failed_precondition(format!(
            "only applications that passed review and are in no other batch can be publicised: {}",
            problems.join("; ")
        )));
    }
    let mut warnings = Vec::new();
    let ends_on_non_working_day = match reference.calendar().is_working_day(new.end) {
        Ok(working) => !working,
        Err(e) => {
            warnings.push(format!("the calendar cannot tell whether {} is a working day: {e}", new.end));
            false
        }
    };
    if ends_on_non_working_day {
        warnings.push(format!(
            "the publicity ends on {}, a non-working day; objections may be hard to lodge on its last day",
            new.end
        ));
    }
    let batch = Batch {
        id: new_prefixed_id("pbt_"),
        title: new.title,
        application_ids: new.application_ids.iter().map(|a| a.to_string()).collect(),
        start: new.start,
        end: new.end,
        published: false,
        ends_on_non_working_day,
        warnings,
        publications: Vec::new(),
        created_by: caller.actor(),
        created_at: clock.now(),
    };
    sqlx::query(
        "INSERT INTO publicity_batches (id, title, start_date, end_date, status, ends_on_non_working_day, \
         warnings_json, publications_json, created_by_subject, created_by_role, created_by_bureau, created_at) \
         VALUES ($1, $2, $3, $4, 'DRAFT', $5, $6, '[]', $7, $8, $9, $10)",
    )
    .bind(&batch.id)
    .bind(&batch.title)
    .bind(batch.start.to_string())
    .bind(batch.end.to_string())
    .bind(i32::from(batch.ends_on_non_working_day))
    .bind(serde_json::to_string(&batch.warnings).unwrap_or_default())
    .bind(&batch.created_by.subject)
    .bind(&batch.created_by.role)
    .bind(batch.created_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(batch.created_at))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    for (i, id) in batch.application_ids.iter().enumerate() {
        sqlx::query("INSERT INTO publicity_batch_applications (application_id, batch_id, ordinal) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&batch.id)
            .bind(i64::try_from(i).unwrap_or_default())
            .execute(&mut **tx)
            .await
            .map_err(Error::from)?;
    }
    let after = serde_json::json!({
        "title": batch.title, "start": batch.start.to_string(), "end": batch.end.to_string(),
        "applications": batch.application_ids, "warnings": batch.warnings,
    });
    append_audit(tx, db, clock, caller, command, ("publicity_batch", &batch.id, "create"), None, after).await?;
    Ok(batch)
}

/// The batch an application is in, if any.
async fn batch_of(conn: &mut AnyConnection, application_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT batch_id FROM publicity_batch_applications WHERE application_id = $1")
        .bind(application_id)
        .fetch_optional(conn)
        .await
}

fn batch_from_row(row: &AnyRow) -> Result<Batch, Error> {
    let id: String = row.try_get("id").map_err(Error::from)?;
    let text = |c: &str| -> Result<String, Error> { row.try_get::<String, _>(c).map_err(Error::from) };
    let publications: Vec<String> = serde_json::from_str(&text("publications_json")?).map_err(|e| corrupt(&id, e))?;
    let publications = publications
        .iter()
        .map(|h| {
            let bytes = hex::decode(h).map_err(|e| corrupt(&id, e))?;
            pb::Publication::decode(bytes.as_slice()).map_err(|e| corrupt(&id, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bureau = text("created_by_bureau")?;
    Ok(Batch {
        title: text("title")?,
        application_ids: Vec::new(),
        start: parse_date(&id, "start_date", &text("start_date")?)?,
        end: parse_date(&id, "end_date", &text("end_date")?)?,
        published: text("status")? == "PUBLISHED",
        ends_on_non_working_day: row.try_get::<i32, _>("ends_on_non_working_day").map_err(Error::from)? != 0,
        warnings: serde_json::from_str(&text("warnings_json")?).map_err(|e| corrupt(&id, e))?,
        publications,
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!bureau.is_empty()).then_some(bureau),
        },
        created_at: parse_instant(&text("created_at")?).map_err(|e| corrupt(&id, e))?,
        id,
    })
}

const BATCH_COLUMNS: &str = "id, title, start_date, end_date, status, ends_on_non_working_day, warnings_json, \
     publications_json, created_by_subject, created_by_role, created_by_bureau, created_at";

async fn with_applications(conn: &mut AnyConnection, mut batch: Batch) -> Result<Batch, Error> {
    batch.application_ids = sqlx::query_scalar(
        "SELECT application_id FROM publicity_batch_applications WHERE batch_id = $1 ORDER BY ordinal",
    )
    .bind(&batch.id)
    .fetch_all(conn)
    .await?;
    Ok(batch)
}

pub async fn load_batch(conn: &mut AnyConnection, id: &str) -> Result<Batch, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {BATCH_COLUMNS} FROM publicity_batches WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Err(Error::BatchNotFound(id.to_owned())) };
    with_applications(conn, batch_from_row(&row)?).await
}

pub fn batch_id(raw: &str, field: &str) -> Result<String, Status> {
    if is_prefixed_id(raw, "pbt_") {
        Ok(raw.to_owned())
    } else {
        let mut v = FieldViolations::new();
        v.add(field, "must be a publicity batch id (pbt_...)");
        v.check()?;
        unreachable!("a violation was added")
    }
}

pub async fn get_batch(db: &Db, id: &str) -> Result<Batch, Error> {
    let mut conn = db.pool().acquire().await?;
    load_batch(&mut conn, id).await
}

/// Newest first.
pub async fn list_batches(
    db: &Db,
    clock: &SharedClock,
    status: Option<pb::PublicityBatchStatus>,
    page: &Page,
) -> Result<(Vec<Batch>, Option<String>), Error> {
    let mut conn = db.pool().acquire().await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BATCH_COLUMNS} FROM publicity_batches WHERE ($1 = '' OR id < $1) ORDER BY id DESC"
    )))
    .bind(page.after.as_deref().unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    let now = clock.now();
    let mut batches = Vec::new();
    for row in &rows {
        let batch = batch_from_row(row)?;
        if status.is_none_or(|s| batch.status(now) == s) {
            batches.push(with_applications(&mut conn, batch).await?);
        }
        if batches.len() > page.size as usize {
            break;
        }
    }
    Ok(page.finish(batches, |b| b.id.clone()))
}

/// Publishes a draft on or before its first day: its applications enter publicity.
#[allow(clippy::too_many_arguments)]
pub async fn publish_batch(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    req: &pb::PublishPublicityBatchRequest,
    today: NaiveDate,
) -> Result<Batch, Status> {
    let id = batch_id(&req.batch_id, "batch_id")?;
    let mut v = FieldViolations::new();
    if req.publications.is_empty() {
        v.add("publications", "name at least one place the notice was published");
    }
    let mut publications = Vec::new();
    for (i, p) in req.publications.iter().enumerate() {
        if p.channel == 0 {
            v.add(format!("publications[{i}].channel"), "is required");
        }
        if p.address.trim().is_empty() {
            v.add(format!("publications[{i}].address"), "is required");
        }
        let day = optional_date(p.publish_date.as_ref(), &format!("publications[{i}].publish_date"), &mut v);
        publications.push(pb::Publication {
            channel: p.channel,
            publish_date: Some(date(day.unwrap_or(today))),
            address: p.address.trim().to_owned(),
            recorded_by: Some(caller.actor().to_proto()),
            record_time: Some(timestamp(clock.now())),
        });
    }
    v.check()?;
    let mut batch = load_batch(tx, &id).await?;
    if batch.published {
        return Err(Status::failed_precondition(format!("publicity batch {id} is already published")));
    }
    if today > batch.start {
        return Err(Status::failed_precondition(format!(
            "publicity batch {id} starts on {}; it is published on or before its first day, so its {} days are \
             whole: draft a new batch with later dates",
            batch.start,
            batch.days()
        )));
    }
    for app_id in &batch.application_ids {
        let parsed = ApplicationId::parse(app_id).ok_or_else(|| Error::ApplicationNotFound(app_id.clone()))?;
        let mut application = sql::get_application(tx, key, &parsed)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::ApplicationNotFound(app_id.clone()))?;
        if application.status != ApplicationStatus::PassedReview {
            return Err(Status::failed_precondition(format!(
                "application {app_id} is {}, not PASSED_REVIEW",
                application.status.code()
            )));
        }
        set_status(tx, key, clock, &mut application, ApplicationStatus::InPublicity).await?;
    }
    batch.published = true;
    batch.publications = publications;
    let encoded: Vec<String> = batch.publications.iter().map(|p| hex::encode(p.encode_to_vec())).collect();
    sqlx::query("UPDATE publicity_batches SET status = 'PUBLISHED', publications_json = $1 WHERE id = $2")
        .bind(serde_json::to_string(&encoded).unwrap_or_default())
        .bind(&batch.id)
        .execute(&mut **tx)
        .await
        .map_err(Error::from)?;
    let after = serde_json::json!({
        "status": "PUBLISHED",
        "publications": batch.publications.iter().map(|p| p.address.clone()).collect::<Vec<_>>(),
    });
    let before = Some(serde_json::json!({ "status": "DRAFT" }));
    append_audit(tx, db, clock, caller, command, ("publicity_batch", &batch.id, "publish"), before, after).await?;
    Ok(batch)
}

async fn set_status(
    tx: &mut Transaction<'static, Any>,
    key: &PersonalDataKey,
    clock: &SharedClock,
    application: &mut Application,
    status: ApplicationStatus,
) -> Result<(), Error> {
    application.status = status;
    application.touch(clock.now());
    sql::update_application(&mut **tx, key, application).await?;
    Ok(())
}

// --- the notice --------------------------------------------------------------------------------

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn category_label(code: i32) -> String {
    ExpertCategory::try_from(code).map_or_else(|_| String::new(), |c| c.as_str_name().to_owned())
}

/// The batch's list as a worksheet: the title and period above a table of the same columns as
/// the HTML notice (identity numbers masked, no contact details).
fn notice_xlsx(
    title: &str,
    period: &str,
    warning: &str,
    rows: &[(String, String, String, String)],
) -> Result<Vec<u8>, Status> {
    let failed = |e: rust_xlsxwriter::XlsxError| Status::internal(format!("writing the XLSX list: {e}"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("公示名单").map_err(failed)?;
    sheet.write_string(0, 0, title).map_err(failed)?;
    sheet.write_string(1, 0, format!("公示期：{period}")).map_err(failed)?;
    if !warning.is_empty() {
        sheet.write_string(2, 0, warning).map_err(failed)?;
    }
    for (col, name) in ["序号", "姓名", "身份证件号码", "类别", "工作单位"].into_iter().enumerate() {
        sheet.write_string(3, u16::try_from(col).unwrap_or(0), name).map_err(failed)?;
    }
    for (i, (name, number, cats, employer)) in rows.iter().enumerate() {
        let r = u32::try_from(i + 4).map_err(|_| Status::out_of_range("too many rows for one worksheet"))?;
        sheet.write_number(r, 0, f64::from(u32::try_from(i + 1).unwrap_or(u32::MAX))).map_err(failed)?;
        for (col, value) in [name, number, cats, employer].into_iter().enumerate() {
            sheet.write_string(r, u16::try_from(col + 1).unwrap_or(0), value).map_err(failed)?;
        }
    }
    workbook.save_to_buffer().map_err(failed)
}

/// The notice as HTML (website) or plain text (WeChat), or the list as XLSX: explicit dates, names, masked identity
/// numbers, categories and employers; never contact details.
pub async fn render_notice(
    db: &Db,
    key: &PersonalDataKey,
    id: &str,
    format: common::FileFormat,
) -> Result<common::FileContent, Status> {
    let mut conn = db.pool().acquire().await.map_err(Error::from)?;
    let batch = load_batch(&mut conn, id).await?;
    let mut rows = Vec::new();
    for app_id in &batch.application_ids {
        let parsed = ApplicationId::parse(app_id).ok_or_else(|| Error::ApplicationNotFound(app_id.clone()))?;
        let a = sql::get_application(&mut conn, key, &parsed)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::ApplicationNotFound(app_id.clone()))?;
        let categories: Vec<String> = a.profile.rest.categories.iter().map(|c| category_label(c.category)).collect();
        let employer = a
            .profile
            .rest
            .employer
            .as_ref()
            .and_then(|e| e.organisation.as_ref())
            .map(|o| o.name.clone())
            .unwrap_or_default();
        rows.push((
            a.profile.name.clone(),
            mask_document(a.profile.identity.number()),
            categories.join("、"),
            employer,
        ));
    }
    let period = format!("{} 至 {}（共 {} 个自然日）", batch.start, batch.end, batch.days());
    let warning = if batch.ends_on_non_working_day { "公示截止日为非工作日。" } else { "" };
    let (content, media_type, ext) = match format {
        common::FileFormat::Html => {
            let mut html = format!(
                "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n\
                 <h1>{t}</h1>\n<p>公示期：{p}</p>\n",
                t = escape(&batch.title),
                p = escape(&period)
            );
            if !warning.is_empty() {
                html.push_str(&format!("<p>{warning}</p>\n"));
            }
            html.push_str(
                "<table>\n<tr><th>序号</th><th>姓名</th><th>身份证件号码</th><th>类别</th><th>工作单位</th></tr>\n",
            );
            for (i, (name, number, cats, employer)) in rows.iter().enumerate() {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    i + 1,
                    escape(name),
                    escape(number),
                    escape(cats),
                    escape(employer)
                ));
            }
            html.push_str("</table>\n<p>公示期间如有异议，请向江门市人力资源和社会保障局反映。</p>\n</body></html>\n");
            (html.into_bytes(), "text/html; charset=utf-8", "html")
        }
        common::FileFormat::Text => {
            let mut text = format!("{}\n\n公示期：{period}\n", batch.title);
            if !warning.is_empty() {
                text.push_str(warning);
                text.push('\n');
            }
            text.push('\n');
            for (i, (name, number, cats, employer)) in rows.iter().enumerate() {
                text.push_str(&format!("{}. {name}  {number}  {cats}  {employer}\n", i + 1));
            }
            text.push_str("\n公示期间如有异议，请向江门市人力资源和社会保障局反映。\n");
            (text.into_bytes(), "text/plain; charset=utf-8", "txt")
        }
        common::FileFormat::Xlsx => (
            notice_xlsx(&batch.title, &period, warning, &rows)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        _ => {
            let mut v = FieldViolations::new();
            v.add("format", "must be FILE_FORMAT_HTML, FILE_FORMAT_TEXT or FILE_FORMAT_XLSX");
            v.check()?;
            unreachable!("a violation was added")
        }
    };
    Ok(common::FileContent {
        file_name: format!("公示-{}.{ext}", batch.id),
        media_type: media_type.to_owned(),
        sha256: hex::encode(Sha256::digest(&content)),
        content,
    })
}

// --- objections --------------------------------------------------------------------------------

fn objection_to_proto(row: &AnyRow) -> Result<pb::Objection, Error> {
    let id: String = row.try_get("id")?;
    let text = |c: &str| -> Result<String, Error> { row.try_get::<String, _>(c).map_err(Error::from) };
    let status = match text("status")?.as_str() {
        "UPHELD" => pb::ObjectionStatus::Upheld,
        "DISMISSED" => pb::ObjectionStatus::Dismissed,
        _ => pb::ObjectionStatus::Open,
    };
    let resolved_at = text("resolved_at")?;
    let contact = (!text("objector_contact_enc")?.is_empty()).then(|| common::ContactDetails {
        mobile: "***".into(),
        email: String::new(),
        address: String::new(),
        masked: true,
    });
    Ok(pb::Objection {
        application_id: text("application_id")?,
        batch_id: text("batch_id")?,
        receive_time: Some(timestamp(parse_instant(&text("received_at")?).map_err(|e| corrupt(&id, e))?)),
        channel: row.try_get::<i32, _>("channel")?,
        objector_name: text("objector_name")?,
        objector_contact: contact,
        content: text("content")?,
        material_ids: Vec::new(),
        status: status as i32,
        findings: text("findings")?,
        recorded_by: actor_from_json(&id, &text("recorded_by_json")?)?.map(|a| a.to_proto()),
        resolved_by: actor_from_json(&id, &text("resolved_by_json")?)?.map(|a| a.to_proto()),
        resolve_time: if resolved_at.is_empty() {
            None
        } else {
            Some(timestamp(parse_instant(&resolved_at).map_err(|e| corrupt(&id, e))?))
        },
        id,
    })
}

async fn load_objection(conn: &mut AnyConnection, id: &str) -> Result<pb::Objection, Error> {
    let row = sqlx::query("SELECT * FROM objections WHERE id = $1").bind(id).fetch_optional(conn).await?;
    objection_to_proto(&row.ok_or_else(|| Error::ObjectionNotFound(id.to_owned()))?)
}

pub fn objection_id(raw: &str, field: &str) -> Result<String, Status> {
    if is_prefixed_id(raw, "obj_") {
        Ok(raw.to_owned())
    } else {
        let mut v = FieldViolations::new();
        v.add(field, "must be an objection id (obj_...)");
        v.check()?;
        unreachable!("a violation was added")
    }
}

pub async fn get_objection(db: &Db, id: &str) -> Result<pb::Objection, Error> {
    let mut conn = db.pool().acquire().await?;
    load_objection(&mut conn, id).await
}

/// Objections newest first, filtered by application, batch and state.
pub async fn list_objections(
    db: &Db,
    req: &pb::ListObjectionsRequest,
) -> Result<(Vec<pb::Objection>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "obj_"), &mut v);
    if !req.application_id.is_empty() && ApplicationId::parse(&req.application_id).is_none() {
        v.add("application_id", "must be an application id (app_...)");
    }
    if !req.batch_id.is_empty() && !is_prefixed_id(&req.batch_id, "pbt_") {
        v.add("batch_id", "must be a publicity batch id (pbt_...)");
    }
    let status = match pb::ObjectionStatus::try_from(req.status) {
        Ok(pb::ObjectionStatus::Unspecified) => "",
        Ok(pb::ObjectionStatus::Open) => "OPEN",
        Ok(pb::ObjectionStatus::Upheld) => "UPHELD",
        Ok(pb::ObjectionStatus::Dismissed) => "DISMISSED",
        Err(_) => {
            v.add("status", "is not an objection status");
            ""
        }
    };
    v.check()?;
    let rows = sqlx::query(
        "SELECT * FROM objections WHERE ($1 = '' OR application_id = $1) AND ($2 = '' OR batch_id = $2) \
         AND ($3 = '' OR status = $3) AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5",
    )
    .bind(&req.application_id)
    .bind(&req.batch_id)
    .bind(status)
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(i64::from(page.size) + 1)
    .fetch_all(db.pool())
    .await
    .map_err(Error::from)?;
    let items = rows.iter().map(objection_to_proto).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |o| o.id.clone()))
}

/// Records an objection entered by staff, from publication until appointment: the
/// application's appointment is held until it is resolved (D10).
#[allow(clippy::too_many_arguments)]
pub async fn record_objection(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    req: &pb::RecordObjectionRequest,
) -> Result<pb::Objection, Status> {
    let mut v = FieldViolations::new();
    let app_id = ApplicationId::parse(&req.application_id);
    if app_id.is_none() {
        v.add("application_id", "must be an application id (app_...)");
    }
    if req.content.trim().is_empty() {
        v.add("content", "is required: what is alleged");
    }
    if req.channel == 0 || common::EntryChannel::try_from(req.channel).is_err() {
        v.add("channel", "is required");
    }
    let now = clock.now();
    let received = match &req.receive_time {
        None => now,
        Some(t) => match DateTime::from_timestamp(t.seconds, 0) {
            Some(t) if t <= now => t,
            _ => {
                v.add("receive_time", "must be a time not in the future");
                now
            }
        },
    };
    v.check()?;
    let app_id = app_id.expect("checked");
    let mut application = sql::get_application(tx, key, &app_id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::ApplicationNotFound(app_id.to_string()))?;
    if !matches!(application.status, ApplicationStatus::InPublicity | ApplicationStatus::ObjectionPending) {
        return Err(Status::failed_precondition(format!(
            "application {app_id} is {}; objections are recorded from publication until appointment \
             (after appointment, record an incident in the registry)",
            application.status.code()
        )));
    }
    let batch_id = batch_of(tx, app_id.as_str()).await.map_err(Error::from)?.unwrap_or_default();
    let contact = req
        .objector_contact
        .as_ref()
        .filter(|c| !(c.mobile.is_empty() && c.email.is_empty() && c.address.is_empty()))
        .map(|c| key.encrypt(&hex::encode(c.encode_to_vec())))
        .unwrap_or_default();
    let id = new_prefixed_id("obj_");
    sqlx::query(
        "INSERT INTO objections (id, application_id, batch_id, received_at, channel, objector_name, \
         objector_contact_enc, content, status, findings, recorded_by_json, resolved_by_json, resolved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', '', $9, '', '')",
    )
    .bind(&id)
    .bind(app_id.as_str())
    .bind(&batch_id)
    .bind(format_instant(received))
    .bind(req.channel)
    .bind(req.objector_name.trim())
    .bind(contact)
    .bind(req.content.trim())
    .bind(actor_json(&caller.actor()))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    let before = application.status.code();
    set_status(tx, key, clock, &mut application, ApplicationStatus::ObjectionPending).await?;
    let after = serde_json::json!({
        "application_id": app_id.as_str(), "batch_id": batch_id, "status": "OPEN",
        "application_status": [before, application.status.code()],
    });
    append_audit(tx, db, clock, caller, command, ("objection", &id, "record"), None, after).await?;
    Ok(load_objection(tx, &id).await?)
}

/// Resolves an objection: upheld rejects the application; dismissed lets it continue once no
/// other objection against it is open.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_objection(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    req: &pb::ResolveObjectionRequest,
) -> Result<(pb::Objection, Application), Status> {
    let mut v = FieldViolations::new();
    if !is_prefixed_id(&req.objection_id, "obj_") {
        v.add("objection_id", "must be an objection id (obj_...)");
    }
    let outcome = match pb::ObjectionStatus::try_from(req.outcome) {
        Ok(pb::ObjectionStatus::Upheld) => "UPHELD",
        Ok(pb::ObjectionStatus::Dismissed) => "DISMISSED",
        _ => {
            v.add("outcome", "must be UPHELD or DISMISSED");
            ""
        }
    };
    if req.findings.trim().is_empty() {
        v.add("findings", "is required: what the verification found");
    }
    v.check()?;
    let objection = load_objection(tx, &req.objection_id).await?;
    if objection.status != pb::ObjectionStatus::Open as i32 {
        return Err(Status::failed_precondition(format!("objection {} is already resolved", objection.id)));
    }
    let now = clock.now();
    sqlx::query(
        "UPDATE objections SET status = $1, findings = $2, resolved_by_json = $3, resolved_at = $4 WHERE id = $5",
    )
    .bind(outcome)
    .bind(req.findings.trim())
    .bind(actor_json(&caller.actor()))
    .bind(format_instant(now))
    .bind(&objection.id)
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    let app_id = ApplicationId::parse(&objection.application_id)
        .ok_or_else(|| Error::ApplicationNotFound(objection.application_id.clone()))?;
    let mut application = sql::get_application(tx, key, &app_id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::ApplicationNotFound(app_id.to_string()))?;
    let before = application.status.code();
    let still_open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM objections WHERE application_id = $1 AND status = 'OPEN'")
            .bind(app_id.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(Error::from)?;
    if outcome == "UPHELD" {
        set_status(tx, key, clock, &mut application, ApplicationStatus::Rejected).await?;
    } else if still_open == 0 && application.status == ApplicationStatus::ObjectionPending {
        set_status(tx, key, clock, &mut application, ApplicationStatus::InPublicity).await?;
    }
    let after = serde_json::json!({
        "status": outcome, "findings": req.findings.trim(),
        "application_status": [before, application.status.code()],
    });
    let before_json = Some(serde_json::json!({ "status": "OPEN" }));
    append_audit(tx, db, clock, caller, command, ("objection", &objection.id, "resolve"), before_json, after).await?;
    Ok((load_objection(tx, &objection.id).await?, application))
}

// --- appointment decisions ---------------------------------------------------------------------

/// The reviewed profile as the registry's AppointExpert wants it: personal fields in full,
/// categories approved in the last review marked verified, the four conditions met.
fn expert_profile(a: &Application) -> rpb::ExpertProfile {
    let full = ca::profile_to_proto(&a.profile, Visibility::Full);
    let current = |t: &ReviewTarget| {
        a.review_items
            .iter()
            .rev()
            .find(|i| i.submission_number == a.submission_count && &i.input.target == t)
            .filter(|i| i.input.verdict == Verdict::Approved)
    };
    let categories = full
        .categories
        .iter()
        .filter_map(|c| {
            let name = ExpertCategory::try_from(c.category).ok()?.as_str_name().to_owned();
            let item = current(&ReviewTarget::Category(name.clone()))?;
            // The materials the reviewer verified for this category are its evidence.
            let documents: Vec<common::DocumentRef> = a
                .current_materials()
                .filter(|m| m.category == name)
                .filter(|m| current(&ReviewTarget::Material(m.id.clone())).is_some())
                .map(|m| common::DocumentRef {
                    id: m.id.as_str().to_owned(),
                    file_name: m.file_name.clone(),
                    media_type: m.media_type.clone(),
                    size_bytes: m.size_bytes,
                    sha256: m.sha256.clone(),
                })
                .collect();
            let description =
                if c.note.is_empty() { format!("资格审核核验（申报 {}）", a.id) } else { c.note.clone() };
            Some(rpb::CategoryHolding {
                category: c.category,
                evidence: Some(common::Evidence { description, documents }),
                valid_until: c.valid_until,
                verified: true,
                verified_by: Some(item.reviewer.to_proto()),
                verified_date: Some(date(item.reviewed_at.date_naive())),
                note: item.input.reason.clone(),
            })
        })
        .collect();
    let conditions = full
        .conditions
        .iter()
        .filter_map(|c| {
            let name = EligibilityCondition::try_from(c.condition).ok()?.as_str_name().to_owned();
            let item = current(&ReviewTarget::Condition(name))?;
            Some(rpb::ConditionRecord {
                condition: c.condition,
                evidence: Some(common::Evidence { description: c.declaration.clone(), documents: Vec::new() }),
                checked_date: Some(date(item.reviewed_at.date_naive())),
                checked_by: Some(item.reviewer.to_proto()),
                met: true,
                note: item.input.reason.clone(),
            })
        })
        .collect();
    rpb::ExpertProfile {
        kind: full.kind,
        name: full.name,
        gender: full.gender,
        birth_date: full.birth_date,
        identity: full.identity,
        other_identities: Vec::new(),
        locality: full.locality,
        contact: full.contact,
        bank_account: full.bank_account,
        employer: full.employer,
        represented_unit: full.represented_unit,
        categories,
        conditions,
        specialties: full.specialties,
        professional_title: full.professional_title,
    }
}

/// Appoints applications whose publicity ended with no open objection: one decision each,
/// and AppointExpert to the registry through the outbox in the same transaction, keyed by the
/// application id. Any application not cleared fails the whole request, named.
#[allow(clippy::too_many_arguments)]
pub async fn decide_appointments(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    req: &pb::DecideAppointmentsRequest,
    today: NaiveDate,
) -> Result<Vec<pb::AppointmentDecision>, Status> {
    let mut v = FieldViolations::new();
    if req.application_ids.is_empty() {
        v.add("application_ids", "name at least one application");
    }
    let mut ids: Vec<ApplicationId> = Vec::new();
    for (i, raw) in req.application_ids.iter().enumerate() {
        match ApplicationId::parse(raw) {
            Some(id) if ids.contains(&id) => v.add(format!("application_ids[{i}]"), "is named twice"),
            Some(id) => ids.push(id),
            None => v.add(format!("application_ids[{i}]"), "must be an application id (app_...)"),
        }
    }
    let decision_date = optional_date(req.decision_date.as_ref(), "decision_date", &mut v).unwrap_or(today);
    let term_start = optional_date(req.term_start.as_ref(), "term_start", &mut v).unwrap_or(decision_date);
    if term_start < decision_date {
        v.add("term_start", "must not be before the decision date");
    }
    if decision_date > today {
        v.add("decision_date", "must not be in the future");
    }
    v.check()?;
    let now = clock.now();
    let mut problems = Vec::new();
    let mut cleared = Vec::new();
    for id in &ids {
        let Some(application) = sql::get_application(tx, key, id).await.map_err(Error::from)? else {
            problems.push(format!("{id}: not found"));
            continue;
        };
        let batch = match batch_of(tx, id.as_str()).await.map_err(Error::from)? {
            Some(b) => Some(load_batch(tx, &b).await?),
            None => None,
        };
        match (&batch, application.status) {
            (_, ApplicationStatus::ObjectionPending) => {
                problems.push(format!("{id}: an objection is open; its appointment is held until it is resolved"))
            }
            (Some(b), ApplicationStatus::InPublicity) if b.published && now >= b.end_time() => {
                cleared.push(application)
            }
            (Some(b), ApplicationStatus::InPublicity) => problems.push(format!(
                "{id}: its publicity ({} to {}) has not ended; it ends at 00:00 Asia/Shanghai on {}",
                b.start,
                b.end,
                b.end.succ_opt().unwrap_or(b.end)
            )),
            (_, status) => problems.push(format!("{id}: is {}, not PUBLICITY_CLEARED", status.code())),
        }
    }
    if !problems.is_empty() {
        return Err(Status::failed_precondition(format!(
            "only applications whose publicity ended with no open objection are appointed: {}",
            problems.join("; ")
        )));
    }
    let actor = caller.actor();
    let mut decisions = Vec::new();
    for mut application in cleared {
        let decision_id = new_prefixed_id("apd_");
        sqlx::query(
            "INSERT INTO appointment_decisions (id, application_id, decision_date, term_start, delivery, \
             decided_by_json, decided_at) VALUES ($1, $2, $3, $4, 'PENDING', $5, $6)",
        )
        .bind(&decision_id)
        .bind(application.id.as_str())
        .bind(decision_date.to_string())
        .bind(term_start.to_string())
        .bind(actor_json(&actor))
        .bind(format_instant(now))
        .execute(&mut **tx)
        .await
        .map_err(Error::from)?;
        let message = rpb::AppointExpertRequest {
            request_id: application.id.to_string(),
            application_id: application.id.to_string(),
            profile: Some(expert_profile(&application)),
            civil_servant_status: application.profile.rest.civil_servant_status,
            decision_date: Some(date(decision_date)),
            term_start: Some(date(term_start)),
            replaces_expert_id: application.replaces_expert_id.clone(),
        };
        let delivery = Delivery {
            destination: "registry",
            method: APPOINT_EXPERT,
            idempotency_key: application.id.as_str(),
            actor: &actor,
        };
        outbox::enqueue(tx, clock, delivery, &message).await.map_err(Error::from)?;
        let before = application.status.code();
        set_status(tx, key, clock, &mut application, ApplicationStatus::AppointmentPending).await?;
        let after = serde_json::json!({
            "application_id": application.id.as_str(),
            "decision_date": decision_date.to_string(),
            "term_start": term_start.to_string(),
            "delivery": "PENDING",
            "application_status": [before, application.status.code()],
        });
        append_audit(tx, db, clock, caller, command, ("appointment_decision", &decision_id, "decide"), None, after)
            .await?;
        decisions.push(pb::AppointmentDecision {
            id: decision_id,
            application_id: application.id.to_string(),
            decision_date: Some(date(decision_date)),
            term_start: Some(date(term_start)),
            delivery: pb::DeliveryStatus::Pending as i32,
            decided_by: Some(actor.to_proto()),
            decide_time: Some(timestamp(now)),
            ..Default::default()
        });
    }
    Ok(decisions)
}
