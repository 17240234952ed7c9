//! `supctl assignment get|list|accept|decline|recuse|cancel|no-show|replacements`: assignments
//! (委派) and the answers to them (D3, D4, D16, D17). Staff enter an expert's answer with
//! `--channel` and `--received` (when the bureau received it, which decides timeliness); an
//! expert's own token answers without them.
//!
//! Also the pieces the other dispatch nouns (`session`, `report`, `submission`) share: the
//! on-behalf flags, times in Asia/Shanghai, request ids for retries, and texts read from files.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use supervision_proto::{
    common::{self, DateRange, EntryChannel, HalfDay, OnBehalf, PageRequest, RelationType},
    dispatch::{
        Accept, Assignment, AssignmentRole, AssignmentStatus, CancelAssignmentRequest, Decline, DeclineReason,
        GetAssignmentRequest, ListAssignmentsRequest, ListReplacementsRequest, RecordNoShowRequest, Recuse,
        RespondToAssignmentRequest, ResponseKind, VacancyReason, WorkedSession,
        dispatch_service_client::DispatchServiceClient, respond_to_assignment_request::Answer,
    },
};
use tonic::Code;

use crate::{
    commands::{
        calendar::{shanghai, show_date, show_time},
        relation::{code, date, name},
    },
    output::Output,
    settings::Settings,
};

// --- shared by the dispatch nouns ----------------------------------------------------------------

/// How staff received what they enter for an expert (D16).
#[derive(Debug, Clone, Args)]
pub struct EntryArgs {
    /// Enter it for the expert, saying how it reached the bureau: phone, wechat, in-person,
    /// in-app, email or letter (D16). Without it the call is the caller's own.
    #[arg(long)]
    pub channel: Option<String>,
    /// When the bureau received it, in Asia/Shanghai (`2026-06-01 09:30`) or RFC 3339; it decides
    /// timeliness (D3), not the time of entry. Now by default.
    #[arg(long, requires = "channel")]
    pub received: Option<String>,
    /// Who took the call, the sender's WeChat name, and so on.
    #[arg(long, requires = "channel", default_value = "")]
    pub entry_note: String,
}

impl EntryArgs {
    pub fn on_behalf(&self) -> anyhow::Result<Option<OnBehalf>> {
        let Some(channel) = &self.channel else { return Ok(None) };
        let channel =
            code(channel, "ENTRY_CHANNEL_", |n| EntryChannel::from_str_name(n).map(|v| v as i32), "an entry channel")?;
        let received = match &self.received {
            Some(text) => parse_instant(text)?,
            None => stamp(Utc::now()),
        };
        Ok(Some(OnBehalf { channel, received_time: Some(received), note: self.entry_note.clone() }))
    }
}

/// The key of a state-changing call: the one given (to retry a call whose outcome is unknown),
/// or a new one.
pub fn request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Passes `status` on, first telling on stderr how to retry the call safely when its outcome is
/// unknown: the same request id replays instead of applying it twice.
pub fn retry_hint(status: tonic::Status, request_id: &str) -> tonic::Status {
    if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown) {
        eprintln!("the call may or may not have been applied: repeat it with --request-id {request_id}");
    }
    status
}

fn stamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A time given as `YYYY-MM-DD HH:MM[:SS]` (or with `T`) in Asia/Shanghai, or in RFC 3339.
pub fn parse_instant(text: &str) -> anyhow::Result<prost_types::Timestamp> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(stamp(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            let t = local.and_local_timezone(shanghai()).single().context("no such time in Asia/Shanghai")?;
            return Ok(stamp(t.with_timezone(&Utc)));
        }
    }
    bail!("`{text}` is not a time: use YYYY-MM-DD HH:MM (Asia/Shanghai) or RFC 3339")
}

/// A timestamp in Asia/Shanghai, RFC 3339; empty when unset.
pub fn instant(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|t| t.with_timezone(&shanghai()).to_rfc3339())
        .unwrap_or_default()
}

/// The text given on the command line, or read from a file (`-`: standard input).
pub fn text_or_file(text: Option<String>, file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    match (text, file) {
        (Some(text), _) => Ok(Some(text)),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            Ok(Some(text))
        }
        (None, Some(path)) => {
            Ok(Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?))
        }
        (None, None) => Ok(None),
    }
}

/// Who acted: `subject (ROLE)`; empty when unset.
pub fn actor(a: Option<&common::Actor>) -> String {
    a.map(|a| format!("{} ({})", a.subject, name(a.role().as_str_name(), "ROLE_"))).unwrap_or_default()
}

/// How staff received something, as recorded.
pub fn on_behalf_json(o: Option<&OnBehalf>) -> Value {
    o.map_or(Value::Null, |o| {
        json!({
            "channel": name(EntryChannel::try_from(o.channel).unwrap_or_default().as_str_name(), "ENTRY_CHANNEL_"),
            "received": instant(o.received_time.as_ref()),
            "note": o.note,
        })
    })
}

/// A worked session given as `DATE,AM|PM,HH:MM,MINUTES[,NOTE]` (the half-day must agree with
/// the start: AM before 12:30, D2).
pub fn parse_worked(text: &str) -> anyhow::Result<WorkedSession> {
    let parts: Vec<&str> = text.splitn(5, ',').map(str::trim).collect();
    let [day, half, start, minutes, rest @ ..] = parts.as_slice() else {
        bail!("`{text}` is not DATE,AM|PM,HH:MM,MINUTES[,NOTE]");
    };
    let half_day = code(half, "HALF_DAY_", |n| HalfDay::from_str_name(n).map(|v| v as i32), "AM or PM")?;
    let (hours, mins) = start.split_once(':').with_context(|| format!("`{start}` is not HH:MM"))?;
    let start_time = common::TimeOfDay {
        hours: hours.parse().with_context(|| format!("`{start}` is not HH:MM"))?,
        minutes: mins.parse().with_context(|| format!("`{start}` is not HH:MM"))?,
    };
    Ok(WorkedSession {
        task_session_id: String::new(),
        date: Some(date(day)?),
        half_day,
        start_time: Some(start_time),
        minutes: minutes.parse().with_context(|| format!("`{minutes}` is not a number of minutes"))?,
        note: rest.first().map_or_else(String::new, |n| (*n).to_owned()),
    })
}

pub fn worked_json(s: &WorkedSession) -> Value {
    json!({
        "task_session_id": s.task_session_id,
        "date": show_date(s.date.as_ref()),
        "half_day": name(HalfDay::try_from(s.half_day).unwrap_or_default().as_str_name(), "HALF_DAY_"),
        "start": show_time(s.start_time.as_ref()),
        "minutes": s.minutes,
        "note": s.note,
    })
}

/// Prints `items` as full JSON documents, or as `headers` rows picked from them for a table.
pub fn listing(out: &Output, headers: &[&str], keys: &[&str], items: Vec<Value>, next_page_token: &str) {
    if out.is_json() {
        out.document(&Value::Array(items));
        return;
    }
    let cell = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let rows = items.iter().map(|item| keys.iter().map(|k| cell(&item[*k])).collect()).collect();
    out.rows(headers, rows);
    if !next_page_token.is_empty() {
        eprintln!("more: --page-token {next_page_token}");
    }
}

pub fn page(page_size: i32, page_token: String) -> Option<PageRequest> {
    Some(PageRequest { page_size, page_token })
}

// --- assignment ----------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// Shows one assignment with its answer, letter, no-show, worked sessions and report.
    Get { assignment_id: String },
    /// Lists a task's roster (sealed until its first session: every staff read is audited) or an
    /// expert's assignments.
    List {
        #[arg(long, required_unless_present = "expert")]
        task: Option<String>,
        #[arg(long)]
        expert: Option<String>,
        /// reserved, notified, accepted, declined-on-time, declined-late, declined-exempt,
        /// recused, no-response, no-show, cancelled, cancelled-status-change, unused, completed.
        #[arg(long)]
        status: Option<String>,
        /// Only with a session on or after this day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Only with a session on or before this day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Accepts; the expert declares no conflict of the kinds of article 9(六).
    Accept {
        assignment_id: String,
        /// The expert declared no conflict with the institution (required to accept).
        #[arg(long)]
        no_conflict_declared: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Declines: on time, late (an incident, D4) or exempt by the D3 deadline and the time received.
    Decline {
        assignment_id: String,
        /// work-conflict, illness, family, force-majeure or other.
        #[arg(long)]
        reason: String,
        /// In the expert's words.
        #[arg(long, default_value = "")]
        detail: String,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Recuses for a conflict (回避); the relation goes to the registry.
    Recuse {
        assignment_id: String,
        /// current-employment, past-employment, relative, colleague, declared-conflict, ...
        #[arg(long)]
        relation: String,
        #[arg(long, default_value = "")]
        detail: String,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Cancels one assignment by the bureau's decision (no penalty); the place is refilled.
    Cancel {
        assignment_id: String,
        #[arg(long)]
        reason: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Records that an accepted expert did not attend a session (D4): an incident goes to the registry.
    NoShow {
        assignment_id: String,
        /// The task session missed (`ses_...`: the `task_session_id` of a recorded worked session).
        #[arg(long)]
        session: String,
        #[arg(long)]
        note: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists a task's vacancies and how each was filled.
    Replacements {
        task_id: String,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

fn status_name(v: i32) -> String {
    name(AssignmentStatus::try_from(v).unwrap_or_default().as_str_name(), "ASSIGNMENT_STATUS_")
}

pub fn assignment_json(a: &Assignment) -> Value {
    let response = a.response.as_ref().map_or(Value::Null, |r| {
        json!({
            "kind": name(ResponseKind::try_from(r.kind).unwrap_or_default().as_str_name(), "RESPONSE_KIND_"),
            "decline_reason": name(DeclineReason::try_from(r.decline_reason).unwrap_or_default().as_str_name(), "DECLINE_REASON_"),
            "recusal_relation": name(RelationType::try_from(r.recusal_relation).unwrap_or_default().as_str_name(), "RELATION_TYPE_"),
            "detail": r.detail,
            "received": instant(r.receive_time.as_ref()),
            "on_behalf": on_behalf_json(r.on_behalf.as_ref()),
            "entered_by": actor(r.entered_by.as_ref()),
        })
    });
    let no_show = a.no_show.as_ref().map_or(Value::Null, |n| {
        json!({
            "session_id": n.session_id,
            "note": n.note,
            "recorded_by": actor(n.recorded_by.as_ref()),
            "recorded": instant(n.record_time.as_ref()),
        })
    });
    json!({
        "id": a.id,
        "task_id": a.task_id,
        "draw_id": a.draw_id,
        "expert_id": a.expert_id,
        "position": a.position,
        "role": name(AssignmentRole::try_from(a.role).unwrap_or_default().as_str_name(), "ASSIGNMENT_ROLE_"),
        "status": status_name(a.status),
        "designated": a.designated,
        "trained": a.trained,
        "notified": instant(a.notify_time.as_ref()),
        "response_deadline": instant(a.response_deadline.as_ref()),
        "decline_deadline": instant(a.decline_deadline.as_ref()),
        "response": response,
        "replaces_assignment_id": a.replaces_assignment_id,
        "replaced_by_assignment_id": a.replaced_by_assignment_id,
        "dispatch_letter_id": a.dispatch_letter_id,
        "no_show": no_show,
        "worked_sessions": a.worked_sessions.iter().map(worked_json).collect::<Vec<_>>(),
        "report_id": a.report_id,
        "fee_revision": a.fee_revision,
        "cancel_reason": a.cancel_reason,
        "created": instant(a.create_time.as_ref()),
        "updated": instant(a.update_time.as_ref()),
    })
}

/// The assignment after a change and the one that took its place, if any.
fn changed(out: &Output, assignment: Option<&Assignment>, replacement: Option<&Assignment>) {
    let mut document = assignment_json(&assignment.cloned().unwrap_or_default());
    document["replacement"] = replacement.map_or(Value::Null, assignment_json);
    out.document(&document);
}

pub async fn run(command: AssignmentCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    let answer = |assignment_id: String, answer: Answer, entry: &EntryArgs, id: Option<String>| {
        anyhow::Ok(RespondToAssignmentRequest {
            request_id: request_id(id),
            assignment_id,
            answer: Some(answer),
            on_behalf: entry.on_behalf()?,
        })
    };
    match command {
        AssignmentCommand::Get { assignment_id } => {
            let a = client.get_assignment(GetAssignmentRequest { id: assignment_id }).await?.into_inner();
            out.document(&assignment_json(&a.assignment.unwrap_or_default()));
        }
        AssignmentCommand::List { task, expert, status, from, to, page_size, page_token } => {
            let status = status
                .map(|s| {
                    code(&s, "ASSIGNMENT_STATUS_", |n| AssignmentStatus::from_str_name(n).map(|v| v as i32), "a status")
                })
                .transpose()?
                .unwrap_or(0);
            let session_dates = match (from, to) {
                (None, None) => None,
                (from, to) => Some(DateRange {
                    start: from.as_deref().map(date).transpose()?,
                    end: to.as_deref().map(date).transpose()?,
                }),
            };
            let request = ListAssignmentsRequest {
                page: page(page_size, page_token),
                task_id: task.unwrap_or_default(),
                expert_id: expert.unwrap_or_default(),
                status,
                session_dates,
            };
            let answer = client.list_assignments(request).await?.into_inner();
            let items = answer.assignments.iter().map(assignment_json).collect();
            listing(
                out,
                &["id", "task", "expert", "position", "role", "status", "response deadline"],
                &["id", "task_id", "expert_id", "position", "role", "status", "response_deadline"],
                items,
                &answer.next_page_token,
            );
        }
        AssignmentCommand::Accept { assignment_id, no_conflict_declared, note, entry, request_id: id } => {
            let request = answer(assignment_id, Answer::Accept(Accept { no_conflict_declared, note }), &entry, id)?;
            let key = request.request_id.clone();
            let r = client.respond_to_assignment(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            changed(out, r.assignment.as_ref(), r.replacement.as_ref());
        }
        AssignmentCommand::Decline { assignment_id, reason, detail, entry, request_id: id } => {
            let reason =
                code(&reason, "DECLINE_REASON_", |n| DeclineReason::from_str_name(n).map(|v| v as i32), "a reason")?;
            let request = answer(assignment_id, Answer::Decline(Decline { reason, detail }), &entry, id)?;
            let key = request.request_id.clone();
            let r = client.respond_to_assignment(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            changed(out, r.assignment.as_ref(), r.replacement.as_ref());
        }
        AssignmentCommand::Recuse { assignment_id, relation, detail, entry, request_id: id } => {
            let relation = code(
                &relation,
                "RELATION_TYPE_",
                |n| RelationType::from_str_name(n).map(|v| v as i32),
                "a relation type",
            )?;
            let request = answer(assignment_id, Answer::Recuse(Recuse { relation, detail }), &entry, id)?;
            let key = request.request_id.clone();
            let r = client.respond_to_assignment(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            changed(out, r.assignment.as_ref(), r.replacement.as_ref());
        }
        AssignmentCommand::Cancel { assignment_id, reason, request_id: id } => {
            let request = CancelAssignmentRequest { request_id: request_id(id), assignment_id, reason };
            let key = request.request_id.clone();
            let r = client.cancel_assignment(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            changed(out, r.assignment.as_ref(), r.replacement.as_ref());
        }
        AssignmentCommand::NoShow { assignment_id, session, note, request_id: id } => {
            let request = RecordNoShowRequest { request_id: request_id(id), assignment_id, session_id: session, note };
            let key = request.request_id.clone();
            let r = client.record_no_show(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            let mut document = assignment_json(&r.assignment.unwrap_or_default());
            document["replacement"] = r.replacement.as_ref().map_or(Value::Null, assignment_json);
            let task = r.task.unwrap_or_default();
            document["task_status"] = json!(name(
                supervision_proto::dispatch::TaskStatus::try_from(task.status).unwrap_or_default().as_str_name(),
                "TASK_STATUS_"
            ));
            out.document(&document);
        }
        AssignmentCommand::Replacements { task_id, page_size, page_token } => {
            let request = ListReplacementsRequest { page: page(page_size, page_token), task_id };
            let answer = client.list_replacements(request).await?.into_inner();
            let items = answer
                .replacements
                .iter()
                .map(|r| {
                    json!({
                        "vacated_assignment_id": r.vacated_assignment_id,
                        "reason": name(VacancyReason::try_from(r.reason).unwrap_or_default().as_str_name(), "VACANCY_REASON_"),
                        "promoted_assignment_id": r.promoted_assignment_id,
                        "time": instant(r.time.as_ref()),
                        "topped_up_assignment_ids": r.topped_up_assignment_ids,
                        "order_exhausted": r.order_exhausted,
                    })
                })
                .collect();
            listing(
                out,
                &["vacated", "reason", "promoted", "time", "topped up", "order exhausted"],
                &[
                    "vacated_assignment_id",
                    "reason",
                    "promoted_assignment_id",
                    "time",
                    "topped_up_assignment_ids",
                    "order_exhausted",
                ],
                items,
                &answer.next_page_token,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_shanghai_or_with_their_offset() {
        let at = parse_instant("2026-06-01 09:30").unwrap();
        assert_eq!(instant(Some(&at)), "2026-06-01T09:30:00+08:00");
        assert_eq!(parse_instant("2026-06-01T01:30:00Z").unwrap(), at);
        assert_eq!(parse_instant("2026-06-01T09:30:15").unwrap().seconds, at.seconds + 15);
        assert!(parse_instant("2026-06-01").is_err());
    }

    #[test]
    fn a_worked_session_is_date_half_day_start_and_minutes() {
        let s = parse_worked("2026-06-08,am,09:00,180,签到表").unwrap();
        assert_eq!(
            worked_json(&s),
            json!({"task_session_id": "", "date": "2026-06-08", "half_day": "AM", "start": "09:00",
                   "minutes": 180, "note": "签到表"})
        );
        assert!(parse_worked("2026-06-08,AM,9h,180").is_err());
        assert!(parse_worked("2026-06-08,noon,09:00,180").is_err());
        assert!(parse_worked("2026-06-08,AM,09:00").is_err());
    }

    #[test]
    fn staff_entries_carry_the_channel_and_the_time_received() {
        let entry = EntryArgs {
            channel: Some("in-person".into()),
            received: Some("2026-06-02 16:45".into()),
            entry_note: "x".into(),
        };
        let o = entry.on_behalf().unwrap().unwrap();
        assert_eq!(
            on_behalf_json(Some(&o)),
            json!({"channel": "IN_PERSON", "received": "2026-06-02T16:45:00+08:00", "note": "x"})
        );
        let none = EntryArgs { channel: None, received: None, entry_note: String::new() };
        assert!(none.on_behalf().unwrap().is_none());
        let bad = EntryArgs { channel: Some("pigeon".into()), received: None, entry_note: String::new() };
        assert!(bad.on_behalf().is_err());
    }
}
