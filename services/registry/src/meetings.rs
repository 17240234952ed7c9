//! 会议、培训、宣传 — meetings of article 13 (plenary and thematic), policy training of article 4
//! (attendance sets the `trained` flag the draw reads), experts' policy-publicity activities of
//! article 8(四), and the yearly compliance view.
//!
//! Choices where the sources leave room (written down in docs/registry-rules.md):
//! - a plenary with no invitees named invites every ACTIVE expert at the time it is scheduled; a
//!   thematic meeting names its invitees;
//! - attendance replaces the list and must be among the invitees; minutes and opinions replace
//!   earlier ones;
//! - training attendance replaces the list; every attendee is `trained`, and an expert taken off
//!   the list stays trained only if another session has them;
//! - an EXPERT sees the meetings they were invited to, the sessions they attended and their own
//!   activities; a county operator logs and sees activities for its own bureau;
//! - the compliance view counts ACTIVE experts as they are now (the registry keeps no status
//!   history snapshot per year end); expiring items are not counted yet (0).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::{Any, Row, Transaction};
use supervision_kit::{
    Bureau, Caller, Db, FieldViolations, Page, Role, SharedClock, audit,
    convert::{date, long_text, on_behalf, optional_text, required_date, required_enum, timestamp},
    idempotency::Command,
    vocab::{is_prefixed_id, new_prefixed_id},
};
use supervision_proto::registry as pb;
use supervision_reference::{Reference, shanghai_today};
use tonic::Status;

use crate::{
    convert::experts::evidence,
    domain::ExpertId,
    error::Error,
    experts::snapshot,
    incidents::{decode_body, encode_body},
};

const MAX_TEXT: usize = 20_000;
const MAX_SHORT: usize = 200;

fn type_code(t: i32) -> &'static str {
    let name = pb::MeetingType::try_from(t).unwrap_or_default().as_str_name();
    name.strip_prefix("MEETING_TYPE_").unwrap_or(name)
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::Invalid(vec![(kind.to_owned(), format!("names no {kind} ({id})"))])
}

/// Expert ids, each well-formed and listed once.
fn expert_ids(raw: &[String], field: &str, v: &mut FieldViolations) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        let id = id.trim();
        if ExpertId::parse(id).is_none() {
            v.add(format!("{field}[{i}]"), "is not an expert id");
        } else if out.iter().any(|o| o == id) {
            v.add(format!("{field}[{i}]"), "is listed twice");
        } else {
            out.push(id.to_owned());
        }
    }
    out
}

/// The ids among `ids` that name no expert, reported under `field`.
async fn require_experts(tx: &mut Transaction<'static, Any>, ids: &[String], field: &str) -> Result<(), Error> {
    let mut problems = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let found = sqlx::query("SELECT id FROM experts WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
        if found.is_none() {
            problems.push((format!("{field}[{i}]"), "names no expert".to_owned()));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::Invalid(problems)) }
}

#[allow(clippy::too_many_arguments)]
async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    entity_type: &str,
    id: &str,
    action: &str,
    after: serde_json::Value,
) -> Result<(), Error> {
    let change = audit::Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type,
        entity_id: id,
        action,
        before: None,
        after: Some(after),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

// --- meetings -------------------------------------------------------------------------------

/// Checks a CreateMeeting request.
pub fn new_meeting(req: &pb::CreateMeetingRequest, caller: &Caller, now: DateTime<Utc>) -> Result<pb::Meeting, Status> {
    let mut v = FieldViolations::new();
    let kind = required_enum::<pb::MeetingType>(req.r#type, "type", "PLENARY or THEMATIC", &mut v);
    let title = long_text(&req.title, "title", MAX_SHORT, true, &mut v);
    let day = required_date(req.date.as_ref(), "date", &mut v);
    let location = optional_text(&req.location, "location", MAX_SHORT, &mut v);
    let agenda = long_text(&req.agenda, "agenda", MAX_TEXT, false, &mut v);
    let invited = expert_ids(&req.invited_expert_ids, "invited_expert_ids", &mut v);
    if kind == Some(pb::MeetingType::Thematic) && invited.is_empty() {
        v.add("invited_expert_ids", "a thematic meeting names the experts it invites");
    }
    v.check()?;
    Ok(pb::Meeting {
        id: new_prefixed_id("mtg_"),
        r#type: req.r#type,
        title,
        date: day.map(date),
        location,
        agenda,
        invited_expert_ids: invited,
        attended_expert_ids: Vec::new(),
        minutes: String::new(),
        opinions: Vec::new(),
        created_by: Some(caller.actor().to_proto()),
        create_time: Some(timestamp(now)),
    })
}

fn meeting_day(m: &pb::Meeting) -> NaiveDate {
    m.date
        .and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
        .unwrap_or_default()
}

async fn save_meeting(tx: &mut Transaction<'static, Any>, m: &pb::Meeting, insert: bool) -> Result<(), Error> {
    let day = meeting_day(m);
    let sql = if insert {
        "INSERT INTO meetings (id, meeting_type, meeting_date, year, body) VALUES ($1, $2, $3, $4, $5)"
    } else {
        "UPDATE meetings SET meeting_type = $2, meeting_date = $3, year = $4, body = $5 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(&m.id)
        .bind(type_code(m.r#type))
        .bind(day.to_string())
        .bind(day.year())
        .bind(encode_body(m))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Schedules a meeting inside `tx`; a plenary without invitees invites every ACTIVE expert.
pub async fn create_meeting(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    mut meeting: pb::Meeting,
) -> Result<pb::Meeting, Error> {
    if meeting.invited_expert_ids.is_empty() {
        let rows =
            sqlx::query("SELECT id FROM experts WHERE status = 'ACTIVE' ORDER BY id").fetch_all(&mut **tx).await?;
        meeting.invited_expert_ids = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?;
    } else {
        require_experts(tx, &meeting.invited_expert_ids, "invited_expert_ids").await?;
    }
    save_meeting(tx, &meeting, true).await?;
    for id in &meeting.invited_expert_ids {
        sqlx::query("INSERT INTO meeting_invitees (meeting_id, expert_id) VALUES ($1, $2)")
            .bind(&meeting.id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    let after = serde_json::json!({
        "type": type_code(meeting.r#type),
        "date": meeting_day(&meeting).to_string(),
        "invited": meeting.invited_expert_ids.len(),
    });
    append_audit(tx, db, clock, caller, command, "meeting", &meeting.id, "create", after).await?;
    Ok(meeting)
}

async fn fetch_meeting(tx: &mut Transaction<'static, Any>, id: &str) -> Result<Option<pb::Meeting>, Error> {
    let row = sqlx::query("SELECT body FROM meetings WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    row.map(|r| decode_body("meetings", id, &r.try_get::<String, _>("body")?)).transpose()
}

fn meeting_id(raw: &str, field: &str) -> Result<String, Status> {
    let raw = raw.trim();
    if is_prefixed_id(raw, "mtg_") {
        Ok(raw.to_owned())
    } else {
        Err(supervision_kit::error::invalid_field(field, "is not a meeting id (mtg_...)"))
    }
}

fn sees_meeting(caller: &Caller, m: &pb::Meeting) -> bool {
    caller.role != Role::Expert || caller.expert_id.as_ref().is_some_and(|own| m.invited_expert_ids.contains(own))
}

/// One meeting; an EXPERT only one they were invited to (else NOT_FOUND).
pub async fn get_meeting(db: &Db, caller: &Caller, raw: &str) -> Result<pb::Meeting, Status> {
    let id = meeting_id(raw, "id")?;
    let mut conn = snapshot(db).await?;
    match fetch_meeting(&mut conn, &id).await? {
        Some(m) if sees_meeting(caller, &m) => Ok(m),
        _ => Err(Status::not_found(format!("meeting {id} not found"))),
    }
}

/// One page of meetings, newest first; an EXPERT sees the ones they were invited to.
pub async fn list_meetings(
    db: &Db,
    caller: &Caller,
    req: &pb::ListMeetingsRequest,
) -> Result<(Vec<pb::Meeting>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "mtg_"), &mut v);
    if pb::MeetingType::try_from(req.r#type).is_err() {
        v.add("type", "is not a meeting type");
    }
    v.check()?;
    let invitee =
        if caller.role == Role::Expert { caller.expert_id.clone().unwrap_or_default() } else { String::new() };
    let kind = if req.r#type == 0 { "" } else { type_code(req.r#type) };
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT m.id, m.body FROM meetings m \
         WHERE ($1 = '' OR m.id < $1) AND ($2 = 0 OR m.year = $2) AND ($3 = '' OR m.meeting_type = $3) \
           AND ($4 = '' OR EXISTS (SELECT 1 FROM meeting_invitees i WHERE i.meeting_id = m.id AND i.expert_id = $4)) \
         ORDER BY m.id DESC LIMIT $5",
    )
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(req.year)
    .bind(kind)
    .bind(invitee)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let items = decode_rows(&rows, "meetings")?;
    Ok(page.finish(items, |m: &pb::Meeting| m.id.clone()))
}

fn decode_rows<M: prost::Message + Default>(rows: &[sqlx::any::AnyRow], table: &'static str) -> Result<Vec<M>, Error> {
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            decode_body(table, &id, &r.try_get::<String, _>("body")?)
        })
        .collect()
}

async fn locked_meeting(tx: &mut Transaction<'static, Any>, id: &str) -> Result<pb::Meeting, Error> {
    sqlx::query("UPDATE meetings SET year = year WHERE id = $1").bind(id).execute(&mut **tx).await?;
    fetch_meeting(tx, id).await?.ok_or_else(|| not_found("meeting_id", id))
}

/// Checks a RecordMeetingAttendance request.
pub fn attendance(req: &pb::RecordMeetingAttendanceRequest) -> Result<(String, Vec<String>), Status> {
    let id = meeting_id(&req.meeting_id, "meeting_id")?;
    let mut v = FieldViolations::new();
    let ids = expert_ids(&req.attended_expert_ids, "attended_expert_ids", &mut v);
    v.check()?;
    Ok((id, ids))
}

/// Replaces a meeting's attendance inside `tx`; every attendee must have been invited.
pub async fn record_attendance(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    (id, attended): (String, Vec<String>),
) -> Result<pb::Meeting, Error> {
    let mut meeting = locked_meeting(tx, &id).await?;
    let strangers: Vec<(String, String)> = attended
        .iter()
        .enumerate()
        .filter(|(_, e)| !meeting.invited_expert_ids.contains(e))
        .map(|(i, _)| (format!("attended_expert_ids[{i}]"), "was not invited to this meeting".to_owned()))
        .collect();
    if !strangers.is_empty() {
        return Err(Error::Invalid(strangers));
    }
    meeting.attended_expert_ids = attended;
    save_meeting(tx, &meeting, false).await?;
    let after = serde_json::json!({ "attended": meeting.attended_expert_ids.len() });
    append_audit(tx, db, clock, caller, command, "meeting", &meeting.id, "attendance", after).await?;
    Ok(meeting)
}

/// Checks a RecordMeetingMinutes request.
pub fn minutes(req: &pb::RecordMeetingMinutesRequest) -> Result<(String, String, Vec<pb::MeetingOpinion>), Status> {
    let id = meeting_id(&req.meeting_id, "meeting_id")?;
    let mut v = FieldViolations::new();
    let text = long_text(&req.minutes, "minutes", MAX_TEXT, true, &mut v);
    let mut opinions = Vec::with_capacity(req.opinions.len());
    for (i, o) in req.opinions.iter().enumerate() {
        let at = format!("opinions[{i}]");
        let expert = o.expert_id.trim();
        if !expert.is_empty() && ExpertId::parse(expert).is_none() {
            v.add(format!("{at}.expert_id"), "is not an expert id");
        }
        let submission = o.submission_id.trim();
        if !submission.is_empty() && !is_prefixed_id(submission, "sub_") {
            v.add(format!("{at}.submission_id"), "is not a submission id (sub_...)");
        }
        let text = long_text(&o.text, &format!("{at}.text"), MAX_TEXT, true, &mut v);
        opinions.push(pb::MeetingOpinion { expert_id: expert.to_owned(), text, submission_id: submission.to_owned() });
    }
    v.check()?;
    Ok((id, text, opinions))
}

/// Replaces a meeting's minutes and opinions inside `tx`.
pub async fn record_minutes(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    (id, text, opinions): (String, String, Vec<pb::MeetingOpinion>),
) -> Result<pb::Meeting, Error> {
    let mut meeting = locked_meeting(tx, &id).await?;
    meeting.minutes = text;
    meeting.opinions = opinions;
    save_meeting(tx, &meeting, false).await?;
    let after = serde_json::json!({ "opinions": meeting.opinions.len() });
    append_audit(tx, db, clock, caller, command, "meeting", &meeting.id, "minutes", after).await?;
    Ok(meeting)
}

// --- training -------------------------------------------------------------------------------

/// Checks a CreateTraining request.
pub fn new_training(
    req: &pb::CreateTrainingRequest,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<pb::Training, Status> {
    let mut v = FieldViolations::new();
    let title = long_text(&req.title, "title", MAX_SHORT, true, &mut v);
    let day = required_date(req.date.as_ref(), "date", &mut v);
    let content = long_text(&req.content, "content", MAX_TEXT, true, &mut v);
    v.check()?;
    Ok(pb::Training {
        id: new_prefixed_id("trn_"),
        title,
        date: day.map(date),
        content,
        attendance: Vec::new(),
        created_by: Some(caller.actor().to_proto()),
        create_time: Some(timestamp(now)),
    })
}

fn training_day(t: &pb::Training) -> NaiveDate {
    t.date
        .and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
        .unwrap_or_default()
}

async fn save_training(tx: &mut Transaction<'static, Any>, t: &pb::Training, insert: bool) -> Result<(), Error> {
    let day = training_day(t);
    let sql = if insert {
        "INSERT INTO trainings (id, training_date, year, body) VALUES ($1, $2, $3, $4)"
    } else {
        "UPDATE trainings SET training_date = $2, year = $3, body = $4 WHERE id = $1"
    };
    sqlx::query(sql).bind(&t.id).bind(day.to_string()).bind(day.year()).bind(encode_body(t)).execute(&mut **tx).await?;
    Ok(())
}

/// Records a training session inside `tx`.
pub async fn create_training(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    training: pb::Training,
) -> Result<pb::Training, Error> {
    save_training(tx, &training, true).await?;
    let after = serde_json::json!({ "date": training_day(&training).to_string() });
    append_audit(tx, db, clock, caller, command, "training", &training.id, "create", after).await?;
    Ok(training)
}

/// Checks a RecordTrainingAttendance request.
pub fn training_attendance(
    req: &pb::RecordTrainingAttendanceRequest,
) -> Result<(String, Vec<pb::TrainingAttendance>), Status> {
    let mut v = FieldViolations::new();
    let id = req.training_id.trim().to_owned();
    if !is_prefixed_id(&id, "trn_") {
        v.add("training_id", "is not a training id (trn_...)");
    }
    let raw: Vec<String> = req.attendance.iter().map(|a| a.expert_id.clone()).collect();
    let ids = expert_ids(&raw, "attendance", &mut v);
    let mut out = Vec::with_capacity(ids.len());
    for (i, a) in req.attendance.iter().enumerate() {
        let result =
            optional_text(&a.assessment_result, &format!("attendance[{i}].assessment_result"), MAX_SHORT, &mut v);
        out.push(pb::TrainingAttendance { expert_id: a.expert_id.trim().to_owned(), assessment_result: result });
    }
    v.check()?;
    Ok((id, out))
}

/// Replaces a session's attendance inside `tx` and keeps each expert's `trained` flag: set for
/// every attendee, and for anyone taken off the list only while another session has them.
pub async fn record_training_attendance(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    (id, attendance): (String, Vec<pb::TrainingAttendance>),
) -> Result<pb::Training, Error> {
    sqlx::query("UPDATE trainings SET year = year WHERE id = $1").bind(&id).execute(&mut **tx).await?;
    let row = sqlx::query("SELECT body FROM trainings WHERE id = $1")
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found("training_id", &id))?;
    let mut training: pb::Training = decode_body("trainings", &id, &row.try_get::<String, _>("body")?)?;
    let ids: Vec<String> = attendance.iter().map(|a| a.expert_id.clone()).collect();
    require_experts(tx, &ids, "attendance").await?;
    let before: Vec<String> = training.attendance.iter().map(|a| a.expert_id.clone()).collect();
    sqlx::query("DELETE FROM training_attendees WHERE training_id = $1").bind(&id).execute(&mut **tx).await?;
    for e in &ids {
        sqlx::query("INSERT INTO training_attendees (training_id, expert_id) VALUES ($1, $2)")
            .bind(&id)
            .bind(e)
            .execute(&mut **tx)
            .await?;
    }
    let now = supervision_kit::storage::format_instant(clock.now());
    for e in ids.iter().chain(before.iter().filter(|b| !ids.contains(b))) {
        sqlx::query(
            "UPDATE experts SET trained = CASE WHEN EXISTS \
             (SELECT 1 FROM training_attendees t WHERE t.expert_id = $1) THEN 1 ELSE 0 END, \
             revision = revision + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(e)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    }
    training.attendance = attendance;
    save_training(tx, &training, false).await?;
    let after = serde_json::json!({ "attended": ids.len() });
    append_audit(tx, db, clock, caller, command, "training", &training.id, "attendance", after).await?;
    Ok(training)
}

/// One page of sessions, newest first; an EXPERT sees the sessions they attended.
pub async fn list_trainings(
    db: &Db,
    caller: &Caller,
    req: &pb::ListTrainingsRequest,
) -> Result<(Vec<pb::Training>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "trn_"), &mut v);
    let mut attendee = req.expert_id.trim().to_owned();
    if !attendee.is_empty() && ExpertId::parse(&attendee).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    v.check()?;
    if caller.role == Role::Expert {
        let own = caller.expert_id.clone().unwrap_or_default();
        if !attendee.is_empty() && attendee != own {
            return Ok((Vec::new(), None));
        }
        attendee = own;
    }
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT t.id, t.body FROM trainings t \
         WHERE ($1 = '' OR t.id < $1) AND ($2 = 0 OR t.year = $2) \
           AND ($3 = '' OR EXISTS (SELECT 1 FROM training_attendees a WHERE a.training_id = t.id AND a.expert_id = $3)) \
         ORDER BY t.id DESC LIMIT $4",
    )
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(req.year)
    .bind(attendee)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let items = decode_rows(&rows, "trainings")?;
    Ok(page.finish(items, |t: &pb::Training| t.id.clone()))
}

// --- publicity ------------------------------------------------------------------------------

/// Checks a RecordPublicityActivity request: the expert logs their own (no `on_behalf`); staff
/// of the bureau it was for enter it with `on_behalf` (D16).
pub fn new_activity(
    req: &pb::RecordPublicityActivityRequest,
    caller: &Caller,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<pb::PublicityActivity, Status> {
    let mut v = FieldViolations::new();
    if ExpertId::parse(req.expert_id.trim()).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let day = required_date(req.date.as_ref(), "date", &mut v);
    if day.is_some_and(|d| d > today) {
        v.add("date", "must not be in the future");
    }
    let bureau = Bureau::from_proto(req.bureau);
    if bureau.is_none() {
        v.add("bureau", "the bureau the activity was for");
    }
    let topic = long_text(&req.topic, "topic", MAX_SHORT, true, &mut v);
    let audience = optional_text(&req.audience, "audience", MAX_SHORT, &mut v);
    let description = long_text(&req.description, "description", MAX_TEXT, false, &mut v);
    evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    let by_the_expert = caller.role == Role::Expert;
    if by_the_expert && req.on_behalf.is_some() {
        v.add("on_behalf", "is for staff entering an activity on the expert's behalf (D16)");
    }
    if !by_the_expert && req.on_behalf.is_none() {
        v.add("on_behalf", "is required when staff enter an activity (D16)");
    }
    v.check()?;
    let bureau = bureau.expect("checked above");
    caller.require_bureau(bureau)?;
    if by_the_expert && caller.expert_id.as_deref() != Some(req.expert_id.trim()) {
        return Err(Status::not_found(format!("expert {} not found", req.expert_id.trim())));
    }
    Ok(pb::PublicityActivity {
        id: new_prefixed_id("act_"),
        expert_id: req.expert_id.trim().to_owned(),
        date: day.map(date),
        bureau: bureau.to_proto() as i32,
        topic,
        audience,
        description,
        evidence: req.evidence.clone(),
        recorded_by: Some(caller.actor().to_proto()),
        record_time: Some(timestamp(now)),
    })
}

/// Logs an activity inside `tx`.
pub async fn record_activity(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    activity: pb::PublicityActivity,
) -> Result<pb::PublicityActivity, Error> {
    require_experts(tx, std::slice::from_ref(&activity.expert_id), "expert_id").await?;
    let day = activity
        .date
        .and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
        .unwrap_or_default();
    let bureau = Bureau::from_proto(activity.bureau).map(Bureau::division_code).unwrap_or_default();
    sqlx::query(
        "INSERT INTO publicity_activities (id, expert_id, bureau, activity_date, year, body) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&activity.id)
    .bind(&activity.expert_id)
    .bind(bureau)
    .bind(day.to_string())
    .bind(day.year())
    .bind(encode_body(&activity))
    .execute(&mut **tx)
    .await?;
    let after = serde_json::json!({ "expert_id": activity.expert_id, "bureau": bureau, "date": day.to_string() });
    append_audit(tx, db, clock, caller, command, "publicity_activity", &activity.id, "record", after).await?;
    Ok(activity)
}

/// One page of activities, newest first; an EXPERT sees their own, a county operator its
/// bureau's.
pub async fn list_activities(
    db: &Db,
    caller: &Caller,
    req: &pb::ListPublicityActivitiesRequest,
) -> Result<(Vec<pb::PublicityActivity>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| is_prefixed_id(t, "act_"), &mut v);
    let mut expert = req.expert_id.trim().to_owned();
    if !expert.is_empty() && ExpertId::parse(&expert).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let mut bureau = String::new();
    if req.bureau != 0 {
        match Bureau::from_proto(req.bureau) {
            Some(b) => b.division_code().clone_into(&mut bureau),
            None => v.add("bureau", "is not a bureau of Jiangmen"),
        }
    }
    v.check()?;
    match caller.role {
        Role::Expert => {
            let own = caller.expert_id.clone().unwrap_or_default();
            if !expert.is_empty() && expert != own {
                return Ok((Vec::new(), None));
            }
            expert = own;
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
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT id, body FROM publicity_activities \
         WHERE ($1 = '' OR id < $1) AND ($2 = '' OR expert_id = $2) AND ($3 = 0 OR year = $3) AND ($4 = '' OR bureau = $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(expert)
    .bind(req.year)
    .bind(bureau)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let items = decode_rows(&rows, "publicity_activities")?;
    Ok(page.finish(items, |a: &pb::PublicityActivity| a.id.clone()))
}

// --- compliance -----------------------------------------------------------------------------

async fn count(conn: &mut sqlx::AnyConnection, sql: &'static str, year: Option<i32>) -> Result<i32, Error> {
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    if let Some(year) = year {
        query = query.bind(year);
    }
    let n = query.fetch_one(conn).await?;
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

/// A year's figures for the database's own duties (articles 4, 13, 14; D21), with a warning per
/// shortfall.
pub async fn yearly_compliance(
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    req: &pb::GetYearlyComplianceRequest,
) -> Result<pb::GetYearlyComplianceResponse, Status> {
    let today = shanghai_today(clock);
    let year = if req.year == 0 { today.year() } else { req.year };
    if !(2000..=2200).contains(&year) {
        return Err(supervision_kit::error::invalid_field("year", "must be a calendar year"));
    }
    let on = NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(today).min(today);
    let required = reference
        .editions()
        .edition_in_force(on)
        .map(|e| i32::try_from(e.meetings.min_plenary_meetings_per_year).unwrap_or(1))
        .unwrap_or(0);
    let mut conn = snapshot(db).await?;
    let plenary =
        count(&mut conn, "SELECT COUNT(*) FROM meetings WHERE year = $1 AND meeting_type = 'PLENARY'", Some(year))
            .await?;
    let thematic =
        count(&mut conn, "SELECT COUNT(*) FROM meetings WHERE year = $1 AND meeting_type = 'THEMATIC'", Some(year))
            .await?;
    let trainings = count(&mut conn, "SELECT COUNT(*) FROM trainings WHERE year = $1", Some(year)).await?;
    let publicity = count(&mut conn, "SELECT COUNT(*) FROM publicity_activities WHERE year = $1", Some(year)).await?;
    let active = count(&mut conn, "SELECT COUNT(*) FROM experts WHERE status = 'ACTIVE'", None).await?;
    let untrained =
        count(&mut conn, "SELECT COUNT(*) FROM experts WHERE status = 'ACTIVE' AND trained = 0", None).await?;
    let unconfirmed = count(
        &mut conn,
        "SELECT COUNT(*) FROM experts WHERE status = 'ACTIVE' AND last_confirmed_year < $1",
        Some(year),
    )
    .await?;
    let mut warnings = Vec::new();
    if plenary < required {
        warnings.push(format!(
            "{year}年召开全体会议 {plenary} 次，少于第十三条要求的每年至少 {required} 次 (article 13: at least {required} plenary meeting(s) a year)"
        ));
    }
    if untrained > 0 {
        warnings
            .push(format!("{untrained} 名在任专家未参加政策培训 (article 4: {untrained} active expert(s) untrained)"));
    }
    if unconfirmed > 0 {
        warnings.push(format!(
            "{unconfirmed} 名在任专家尚未确认{year}年度信息 (D21: {unconfirmed} self-confirmation(s) outstanding)"
        ));
    }
    Ok(pb::GetYearlyComplianceResponse {
        year,
        plenary_meetings: plenary,
        required_plenary_meetings: required,
        thematic_meetings: thematic,
        trainings,
        active_experts: active,
        untrained_active_experts: untrained,
        self_confirmations_outstanding: unconfirmed,
        publicity_activities: publicity,
        expiring_items: 0,
        warnings,
    })
}
