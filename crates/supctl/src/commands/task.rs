//! `supctl task create|update|cancel|approve-exception|get|list`: supervision tasks (监督评估任务).
//! A task names its sessions (`ses_...` ids, which `assignment no-show --session` takes), its team
//! (N primaries, B backups), what it supervises, and the exceptions the city must approve before
//! a draw (D7, D13, D15).

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use supervision_kit::Bureau;
use supervision_proto::{
    common::{FundSource, HalfDay, PageRequest, SpecialtyCode, TimeOfDay},
    dispatch::{
        Activity, ActivityKind, ActivitySubject, ApproveTaskExceptionRequest, CancelTaskRequest, CreateTaskRequest,
        GetTaskRequest, ListTasksRequest, Task, TaskException, TaskExceptionKind, TaskMode, TaskOrigin, TaskSession,
        TaskStatus, UpdateTaskRequest, dispatch_service_client::DispatchServiceClient,
    },
};

use crate::{
    commands::{
        assignment::{actor, instant, request_id, retry_hint},
        calendar::{show_date, show_time},
        draw::time,
        relation::{code, date, name},
    },
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Open,
    Staffing,
    Staffed,
    Understaffed,
    InProgress,
    Blocked,
    Completed,
    Cancelled,
}

impl Status {
    fn to_proto(self) -> TaskStatus {
        match self {
            Status::Open => TaskStatus::Open,
            Status::Staffing => TaskStatus::Staffing,
            Status::Staffed => TaskStatus::Staffed,
            Status::Understaffed => TaskStatus::Understaffed,
            Status::InProgress => TaskStatus::InProgress,
            Status::Blocked => TaskStatus::Blocked,
            Status::Completed => TaskStatus::Completed,
            Status::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// What a task supervises and how; every flag of `create`, and of `update` where given.
#[derive(Debug, Clone, Default, Args)]
pub struct TaskFields {
    /// A title.
    #[arg(long)]
    pub title: Option<String>,
    /// What is trained or evaluated: skill-level, special-ability, course-standard-project or
    /// vocational-qualification.
    #[arg(long)]
    pub subject: Option<String>,
    /// The activity: training, assessment, appraisal, competition, recognition or
    /// in-house-evaluation.
    #[arg(long)]
    pub activity: Option<String>,
    /// The institution's reference: class number, exam batch, competition name.
    #[arg(long)]
    pub reference: Option<String>,
    /// A description for the briefing.
    #[arg(long)]
    pub description: Option<String>,
    /// on-site (the default at creation), remote-video or document-review.
    #[arg(long)]
    pub mode: Option<String>,
    /// A session as DATE,AM|PM[,HH:MM[,HH:MM]] (date, half-day, planned start and end), e.g.
    /// `2026-06-08,AM,09:00`. Repeat for each; `update` replaces them all.
    #[arg(long = "session")]
    pub sessions: Vec<String>,
    /// N: experts needed (D7; the edition's default, 2, when absent; below 2 needs a small-team
    /// exception).
    #[arg(long)]
    pub team_size: Option<i32>,
    /// B: ranked backups (the edition's default when absent).
    #[arg(long)]
    pub backups: Option<i32>,
    /// A specialty wanted (`6-29-03-01`), tier 1 of D14. Repeat for each; `update` replaces them.
    #[arg(long = "specialty")]
    pub specialties: Vec<String>,
    /// The fund fees are paid from: provincial-skill-training or city-county-employment.
    #[arg(long)]
    pub fund_source: Option<String>,
    /// Marks the task urgent (drawn less than the lead time ahead), with the reason.
    #[arg(long)]
    pub urgent_reason: Option<String>,
    /// An exception the task needs, as KIND=REASON: small-team (N below 2, D7) or cross-county
    /// (an institution outside the county, D13); the city approves it with `approve-exception`.
    /// Repeat for each; `update` replaces the unapproved ones.
    #[arg(long = "exception")]
    pub exceptions: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Shows one task, with its sessions' ids (`ses_...`).
    Get { task_id: String },
    /// Lists tasks by first session date; county roles see their own bureau's.
    List {
        /// Dispatching bureau as a division code (440703) or name (蓬江区).
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Creates a task; a county role names its own bureau.
    Create {
        /// Dispatching bureau as a division code (440703) or name (蓬江区).
        #[arg(long)]
        bureau: String,
        /// The supervised institution (`ins_...`).
        #[arg(long)]
        institution: String,
        /// Why: routine (the default), random-plan, complaint, special-campaign or follow-up.
        #[arg(long, default_value = "routine")]
        origin: String,
        /// For a complaint: the submission that led to it (`sub_...`).
        #[arg(long, default_value = "")]
        origin_submission: String,
        /// The expert who reported the tip-off (`exp_...`); kept out of the draw (D14).
        #[arg(long, default_value = "")]
        reporter_expert: String,
        #[command(flatten)]
        fields: TaskFields,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Changes a task before its first draw: only the fields given change.
    Update {
        task_id: String,
        #[command(flatten)]
        fields: TaskFields,
        /// Makes the task not urgent.
        #[arg(long, conflicts_with = "urgent_reason")]
        not_urgent: bool,
        /// The `revision` read; the change is refused (ABORTED) if the task changed since. By
        /// default the revision this command reads just before.
        #[arg(long)]
        expected_revision: Option<i64>,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Cancels a task with a reason; its assignments are cancelled.
    Cancel {
        task_id: String,
        #[arg(long)]
        reason: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Approves an exception (CITY_ADMIN): small-team, cross-county, reduced-team (with
    /// --reduced-team-size) or non-random-designation (D15, before `draw designate`).
    ApproveException {
        task_id: String,
        #[arg(long)]
        kind: String,
        /// The approver's reasons.
        #[arg(long)]
        reason: String,
        /// For reduced-team: the new N (at least 1).
        #[arg(long, default_value_t = 0)]
        reduced_team_size: i32,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
}

/// A session given as `DATE,AM|PM[,HH:MM[,HH:MM]]`.
fn parse_session(text: &str) -> anyhow::Result<TaskSession> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [day, half, times @ ..] = parts.as_slice() else {
        bail!("`{text}` is not DATE,AM|PM[,HH:MM[,HH:MM]]");
    };
    if times.len() > 2 {
        bail!("`{text}` is not DATE,AM|PM[,HH:MM[,HH:MM]]");
    }
    let clock = |t: &str| -> anyhow::Result<TimeOfDay> {
        let (h, m) = t.split_once(':').with_context(|| format!("`{t}` is not HH:MM"))?;
        Ok(TimeOfDay {
            hours: h.parse().with_context(|| format!("`{t}` is not HH:MM"))?,
            minutes: m.parse().with_context(|| format!("`{t}` is not HH:MM"))?,
        })
    };
    Ok(TaskSession {
        id: String::new(),
        date: Some(date(day)?),
        half_day: code(half, "HALF_DAY_", |n| HalfDay::from_str_name(n).map(|v| v as i32), "AM or PM")?,
        planned_start: times.first().map(|t| clock(t)).transpose()?,
        planned_end: times.get(1).map(|t| clock(t)).transpose()?,
    })
}

/// An exception asked for, as `KIND=REASON`.
fn parse_exception(text: &str) -> anyhow::Result<TaskException> {
    let (kind, reason) = text.split_once('=').with_context(|| format!("`{text}` is not KIND=REASON"))?;
    Ok(TaskException { kind: exception_kind(kind)?, reason: reason.trim().to_owned(), ..Default::default() })
}

fn exception_kind(text: &str) -> anyhow::Result<i32> {
    code(text, "TASK_EXCEPTION_KIND_", |n| TaskExceptionKind::from_str_name(n).map(|v| v as i32), "an exception kind")
}

impl TaskFields {
    /// The fields given, over `base`, and the paths of UpdateTask's mask they change.
    fn overlay(&self, base: &mut Task) -> anyhow::Result<Vec<&'static str>> {
        let mut paths = Vec::new();
        if let Some(title) = &self.title {
            base.title.clone_from(title);
            paths.push("title");
        }
        if self.subject.is_some() || self.activity.is_some() || self.reference.is_some() || self.description.is_some() {
            let activity = base.activity.get_or_insert_with(Activity::default);
            if let Some(subject) = &self.subject {
                activity.subject = code(
                    subject,
                    "ACTIVITY_SUBJECT_",
                    |n| ActivitySubject::from_str_name(n).map(|v| v as i32),
                    "an activity subject",
                )?;
            }
            if let Some(kind) = &self.activity {
                activity.kind =
                    code(kind, "ACTIVITY_KIND_", |n| ActivityKind::from_str_name(n).map(|v| v as i32), "an activity")?;
            }
            if let Some(reference) = &self.reference {
                activity.reference.clone_from(reference);
            }
            if let Some(description) = &self.description {
                activity.description.clone_from(description);
            }
            paths.push("activity");
        }
        if let Some(mode) = &self.mode {
            base.mode = code(mode, "TASK_MODE_", |n| TaskMode::from_str_name(n).map(|v| v as i32), "a mode")?;
            paths.push("mode");
        }
        if !self.sessions.is_empty() {
            base.sessions = self.sessions.iter().map(|s| parse_session(s)).collect::<anyhow::Result<_>>()?;
            paths.push("sessions");
        }
        if let Some(n) = self.team_size {
            base.team_size = n;
            paths.push("team_size");
        }
        if let Some(b) = self.backups {
            base.backup_count = b;
            paths.push("backup_count");
        }
        if !self.specialties.is_empty() {
            base.specialties_wanted = self
                .specialties
                .iter()
                .map(|c| SpecialtyCode { code: c.trim().to_owned(), name: String::new() })
                .collect();
            paths.push("specialties_wanted");
        }
        if let Some(fund) = &self.fund_source {
            base.fund_source =
                code(fund, "FUND_SOURCE_", |n| FundSource::from_str_name(n).map(|v| v as i32), "a fund source")?;
            paths.push("fund_source");
        }
        if let Some(reason) = &self.urgent_reason {
            base.urgent = true;
            base.urgent_reason.clone_from(reason);
            paths.extend(["urgent", "urgent_reason"]);
        }
        if !self.exceptions.is_empty() {
            base.exceptions = self.exceptions.iter().map(|e| parse_exception(e)).collect::<anyhow::Result<_>>()?;
            paths.push("exceptions");
        }
        Ok(paths)
    }
}

/// Prints the task a call returned.
fn show(out: &Output, task: Option<Task>) {
    out.document(&to_json(&task.unwrap_or_default()));
}

pub async fn run(command: TaskCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        TaskCommand::Get { task_id } => {
            let task = client.get_task(GetTaskRequest { id: task_id }).await?.into_inner().task.unwrap_or_default();
            out.document(&to_json(&task));
        }
        TaskCommand::Create {
            bureau,
            institution,
            origin,
            origin_submission,
            reporter_expert,
            fields,
            request_id: id,
        } => {
            let mut task = Task { mode: TaskMode::OnSite as i32, ..Default::default() };
            fields.overlay(&mut task)?;
            let request = CreateTaskRequest {
                request_id: request_id(id),
                dispatching_bureau: parse_bureau(&bureau)?.to_proto() as i32,
                institution_id: institution,
                title: task.title,
                activity: task.activity,
                mode: task.mode,
                origin: code(&origin, "TASK_ORIGIN_", |n| TaskOrigin::from_str_name(n).map(|v| v as i32), "an origin")?,
                origin_submission_id: origin_submission,
                reporter_expert_id: reporter_expert,
                sessions: task.sessions,
                team_size: fields.team_size,
                backup_count: fields.backups,
                specialties_wanted: task.specialties_wanted,
                fund_source: task.fund_source,
                urgent: task.urgent,
                urgent_reason: task.urgent_reason,
                exceptions: task.exceptions,
            };
            let key = request.request_id.clone();
            let answer = client.create_task(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            show(out, answer.task);
        }
        TaskCommand::Update { task_id, fields, not_urgent, expected_revision, request_id: id } => {
            let mut task = client.get_task(GetTaskRequest { id: task_id }).await?.into_inner().task.unwrap_or_default();
            let read = task.revision;
            let mut paths = fields.overlay(&mut task)?;
            if not_urgent {
                task.urgent = false;
                task.urgent_reason.clear();
                paths.extend(["urgent", "urgent_reason"]);
            }
            if paths.is_empty() {
                bail!("name at least one field to change (see `supctl task update --help`)");
            }
            let request = UpdateTaskRequest {
                request_id: request_id(id),
                task: Some(task),
                update_mask: Some(prost_types::FieldMask { paths: paths.into_iter().map(str::to_owned).collect() }),
                expected_revision: expected_revision.unwrap_or(read),
            };
            let key = request.request_id.clone();
            let answer = client.update_task(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            show(out, answer.task);
        }
        TaskCommand::Cancel { task_id, reason, request_id: id } => {
            let request = CancelTaskRequest { request_id: request_id(id), task_id, reason };
            let key = request.request_id.clone();
            let answer = client.cancel_task(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            show(out, answer.task);
        }
        TaskCommand::ApproveException { task_id, kind, reason, reduced_team_size, request_id: id } => {
            let request = ApproveTaskExceptionRequest {
                request_id: request_id(id),
                task_id,
                kind: exception_kind(&kind)?,
                reason,
                reduced_team_size,
            };
            let key = request.request_id.clone();
            let answer = client.approve_task_exception(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            show(out, answer.task);
        }
        TaskCommand::List { bureau, status, page_size, page_token } => {
            let request = ListTasksRequest {
                page: Some(PageRequest { page_size, page_token }),
                dispatching_bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                status: status.map_or(0, |s| s.to_proto() as i32),
                ..Default::default()
            };
            let page = client.list_tasks(request).await?.into_inner();
            let rows = page
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.task_number.clone(),
                        bureau_name(t.dispatching_bureau),
                        t.institution_id.clone(),
                        status_name(t.status),
                        format!("{}/{}", t.accepted_count, t.team_size),
                        first_session(t),
                    ]
                })
                .collect();
            out.rows(&["id", "number", "bureau", "institution", "status", "accepted", "first session"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn bureau_name(value: i32) -> String {
    Bureau::from_proto(value).map(|b| b.to_string()).unwrap_or_default()
}

fn status_name(value: i32) -> String {
    TaskStatus::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("TASK_STATUS_").to_owned())
        .unwrap_or_default()
}

fn first_session(t: &Task) -> String {
    t.sessions.first().map(|s| format!("{} {}", show_date(s.date.as_ref()), half_day(s.half_day))).unwrap_or_default()
}

fn half_day(value: i32) -> String {
    name(HalfDay::try_from(value).unwrap_or_default().as_str_name(), "HALF_DAY_")
}

fn session_json(s: &TaskSession) -> Value {
    json!({
        "id": s.id,
        "date": show_date(s.date.as_ref()),
        "half_day": half_day(s.half_day),
        "planned_start": show_time(s.planned_start.as_ref()),
        "planned_end": show_time(s.planned_end.as_ref()),
    })
}

fn exception_json(e: &TaskException) -> Value {
    json!({
        "kind": name(TaskExceptionKind::try_from(e.kind).unwrap_or_default().as_str_name(), "TASK_EXCEPTION_KIND_"),
        "reason": e.reason,
        "reduced_team_size": e.reduced_team_size,
        "approved": e.approved,
        "approved_by": actor(e.approved_by.as_ref()),
        "approved_at": instant(e.approve_time.as_ref()),
    })
}

fn to_json(t: &Task) -> Value {
    let activity = t.activity.clone().unwrap_or_default();
    json!({
        "id": t.id,
        "task_number": t.task_number,
        "dispatching_bureau": bureau_name(t.dispatching_bureau),
        "institution_id": t.institution_id,
        "title": t.title,
        "activity": {
            "subject": name(ActivitySubject::try_from(activity.subject).unwrap_or_default().as_str_name(), "ACTIVITY_SUBJECT_"),
            "kind": name(ActivityKind::try_from(activity.kind).unwrap_or_default().as_str_name(), "ACTIVITY_KIND_"),
            "reference": activity.reference,
            "description": activity.description,
        },
        "mode": name(TaskMode::try_from(t.mode).unwrap_or_default().as_str_name(), "TASK_MODE_"),
        "origin": name(TaskOrigin::try_from(t.origin).unwrap_or_default().as_str_name(), "TASK_ORIGIN_"),
        "origin_submission_id": t.origin_submission_id,
        "reporter_expert_id": t.reporter_expert_id,
        "status": status_name(t.status),
        "team_size": t.team_size,
        "backup_count": t.backup_count,
        "accepted_count": t.accepted_count,
        "specialties_wanted": t.specialties_wanted.iter().map(|s| s.code.clone()).collect::<Vec<_>>(),
        "fund_source": name(FundSource::try_from(t.fund_source).unwrap_or_default().as_str_name(), "FUND_SOURCE_"),
        "urgent": t.urgent,
        "urgent_reason": t.urgent_reason,
        "exceptions": t.exceptions.iter().map(exception_json).collect::<Vec<_>>(),
        "edition_number": t.edition_number,
        "first_session": first_session(t),
        "sessions": t.sessions.iter().map(session_json).collect::<Vec<_>>(),
        "cancel_reason": t.cancel_reason,
        "created_by": actor(t.created_by.as_ref()),
        "created": time(t.create_time.map(|c| c.seconds)),
        "revision": t.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_date_half_day_and_planned_times() {
        let s = parse_session("2026-06-08,am,09:00,11:30").unwrap();
        assert_eq!(
            session_json(&s),
            json!({"id": "", "date": "2026-06-08", "half_day": "AM", "planned_start": "09:00", "planned_end": "11:30"})
        );
        assert_eq!(session_json(&parse_session("2026-06-08,PM").unwrap())["planned_start"], "");
        assert!(parse_session("2026-06-08").is_err());
        assert!(parse_session("2026-06-08,noon").is_err());
        assert!(parse_session("2026-06-08,AM,9h").is_err());
        assert!(parse_session("2026-06-08,AM,09:00,10:00,11:00").is_err());
    }

    #[test]
    fn only_the_fields_given_are_in_the_mask() {
        let fields = TaskFields {
            title: Some("t".into()),
            reference: Some("2026-焊工-8".into()),
            urgent_reason: Some("考核提前".into()),
            exceptions: vec!["cross-county=跨县监督".into()],
            ..Default::default()
        };
        let mut task =
            Task { activity: Some(Activity { subject: 1, kind: 2, ..Default::default() }), ..Default::default() };
        let paths = fields.overlay(&mut task).unwrap();
        assert_eq!(paths, ["title", "activity", "urgent", "urgent_reason", "exceptions"]);
        let activity = task.activity.unwrap();
        assert_eq!((activity.subject, activity.kind, activity.reference.as_str()), (1, 2, "2026-焊工-8"));
        assert_eq!(task.exceptions[0].kind, TaskExceptionKind::CrossCounty as i32);
        assert!(task.urgent);
        assert!(parse_exception("small-team").is_err());
        assert!(parse_exception("sideways=x").is_err());
    }
}
