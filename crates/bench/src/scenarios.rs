//! The scenarios of issue 12 against services started in this process.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{NaiveDate, TimeZone, Utc};
use supervision_calendar::Calendar;
use supervision_draw::{FrozenList, SeedString, ServerSeed, rank};
use supervision_kit::Role;
use supervision_proto::{
    common::{self, BureauCode, Date, HalfDay, PageRequest, TimeOfDay},
    dispatch::{
        Accept, AcceptReportRequest, Activity, ActivityKind, ActivitySubject, AssignmentRole, CreateTaskRequest,
        ExecuteDrawRequest, PrepareDrawRequest, RecordWorkedSessionsRequest, ReportContent, RespondToAssignmentRequest,
        SubmitReportRequest, TaskMode, TaskOrigin, TaskSession, WitnessDrawRequest, WorkedSession,
        dispatch_service_client::DispatchServiceClient, respond_to_assignment_request::Answer,
    },
    finance::{ListFeeLinesRequest, finance_service_client::FinanceServiceClient},
    registry::{
        CreateInstitutionRequest, GetExpertRequest, InstitutionType, ListExpertsRequest, StreamDrawPoolRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Bureau, service_acting_for};
use tonic::{Status, transport::Channel};

use crate::{
    cluster::Svc,
    hist::Histogram,
    load::{self, Outcome, Stop},
};

pub const SCHOOL_CODE: &str = "91440703MA4W00001M";

fn id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn pb_date(d: NaiveDate) -> Date {
    use chrono::Datelike;
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

/// Registers the supervised school (Pengjiang) and returns its id.
pub async fn school(admin: AuthedChannel) -> Result<String, Status> {
    let mut admin = RegistryServiceClient::new(admin);
    let request = CreateInstitutionRequest {
        request_id: id(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: "蓬江压测职业培训学校".into(),
        credit_code: SCHOOL_CODE.into(),
        parent_id: String::new(),
        county: BureauCode::Pengjiang as i32,
        address: "江门市蓬江区".into(),
        head: "李校长".into(),
    };
    let institution = admin.create_institution(request).await?.into_inner().institution;
    institution.map(|i| i.id).ok_or_else(|| Status::internal("no institution in the answer"))
}

/// Distinct session slots (working day, half-day) from `first` on, handed out in order, so
/// that sequential draws never compete for the same experts.
#[derive(Debug)]
pub struct Slots {
    calendar: Calendar,
    next: Mutex<(NaiveDate, bool)>,
}

impl Slots {
    pub fn from(first: NaiveDate) -> Self {
        Self { calendar: Calendar::embedded(), next: Mutex::new((first, false)) }
    }

    pub fn take(&self) -> (NaiveDate, HalfDay) {
        let mut next = self.next.lock().expect("the slot lock");
        let (day, pm) = *next;
        *next = if pm {
            (self.calendar.add_working_days(day, 1).expect("the slots stay in covered years"), false)
        } else {
            (day, true)
        };
        (day, if pm { HalfDay::Pm } else { HalfDay::Am })
    }

    /// How many more slots [`Self::take`] can hand out before the embedded calendar ends.
    pub fn left(&self) -> usize {
        let (mut day, mut pm) = *self.next.lock().expect("the slot lock");
        let mut left = 0;
        loop {
            if pm {
                // Handing out an afternoon moves on to the next working day, which must exist.
                let Ok(next) = self.calendar.add_working_days(day, 1) else { return left };
                day = next;
            }
            pm = !pm;
            left += 1;
        }
    }
}

/// Dispatch's clock for the draw scenarios: Monday 2026-06-01 10:00 in Jiangmen; the first
/// session slot is Monday 2026-06-08, which meets the edition's lead time of 5 working days.
pub fn draw_clock() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).single().expect("a valid instant")
}

pub fn first_slot_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 8).expect("a date")
}

fn task_request(school: &str, day: NaiveDate, half_day: HalfDay) -> CreateTaskRequest {
    CreateTaskRequest {
        request_id: id(),
        dispatching_bureau: BureauCode::Pengjiang as i32,
        institution_id: school.into(),
        title: "电工职业技能等级认定考核现场监督".into(),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: "压测批次".into(),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions: vec![TaskSession { date: Some(pb_date(day)), half_day: half_day as i32, ..Default::default() }],
        fund_source: common::FundSource::CityCountyEmployment as i32,
        ..Default::default()
    }
}

/// The clients a draw needs: the operator and a second staff user who witnesses.
#[derive(Debug, Clone)]
pub struct Drawers {
    pub operator: DispatchServiceClient<AuthedChannel>,
    pub witness: DispatchServiceClient<AuthedChannel>,
    pub school: String,
}

impl Drawers {
    pub fn new(dispatch: &Svc, school: &str) -> Self {
        Self {
            operator: DispatchServiceClient::new(dispatch.as_user(
                "bench-operator-a",
                Role::CountyOperator,
                Some(Bureau::Pengjiang),
            )),
            witness: DispatchServiceClient::new(dispatch.as_user(
                "bench-operator-b",
                Role::CountyOperator,
                Some(Bureau::Pengjiang),
            )),
            school: school.to_owned(),
        }
    }
}

/// The phases of one draw, timed from the client.
#[derive(Debug, Clone, Default)]
pub struct DrawTimes {
    pub create_task: Duration,
    pub prepare: Duration,
    pub witness: Duration,
    pub execute: Duration,
    pub candidates: usize,
    /// The executed draw's primaries and backups, by assignment id and expert id.
    pub primaries: Vec<(String, String)>,
}

impl DrawTimes {
    /// Prepare + witness + execute: the draw end to end.
    pub fn draw(&self) -> Duration {
        self.prepare + self.witness + self.execute
    }
}

/// Creates a task on `slot` and runs its draw; a draw that places fewer primaries than the
/// team size is an error.
pub async fn draw_once(d: &Drawers, slot: (NaiveDate, HalfDay)) -> Result<DrawTimes, Status> {
    let (mut op, mut wit) = (d.operator.clone(), d.witness.clone());
    let mut times = DrawTimes::default();
    let t = Instant::now();
    let task = op.create_task(task_request(&d.school, slot.0, slot.1)).await?.into_inner().task;
    let task_id = task.map(|t| t.id).ok_or_else(|| Status::internal("no task in the answer"))?;
    times.create_task = t.elapsed();

    let t = Instant::now();
    let prepared = op
        .prepare_draw(PrepareDrawRequest { request_id: id(), task_id, kind: 0 })
        .await?
        .into_inner()
        .draw
        .ok_or_else(|| Status::internal("no draw in the answer"))?;
    times.prepare = t.elapsed();
    times.candidates = usize::try_from(prepared.candidate_count).unwrap_or(0);

    let t = Instant::now();
    wit.witness_draw(WitnessDrawRequest { request_id: id(), draw_id: prepared.id.clone(), dice_digits: String::new() })
        .await?;
    times.witness = t.elapsed();

    let t = Instant::now();
    let executed = op.execute_draw(ExecuteDrawRequest { request_id: id(), draw_id: prepared.id }).await?.into_inner();
    times.execute = t.elapsed();
    let mut primaries: Vec<_> =
        executed.assignments.iter().filter(|a| a.role == AssignmentRole::Primary as i32).collect();
    primaries.sort_by_key(|a| a.position);
    if primaries.is_empty() || primaries.len() < usize::try_from(prepared.team_size).unwrap_or(1) {
        return Err(Status::internal(format!(
            "the draw placed {} primaries of {}",
            primaries.len(),
            prepared.team_size
        )));
    }
    times.primaries = primaries.iter().map(|a| (a.id.clone(), a.expert_id.clone())).collect();
    Ok(times)
}

/// The pool of `school` for `day`, as dispatch reads it: every expert id, and the time it took.
pub async fn stream_pool(registry: &Channel, school: &str, day: NaiveDate) -> Result<(Vec<String>, Duration), Status> {
    let mut client = RegistryServiceClient::new(service_acting_for(registry, "dispatch", Role::CityOperator, None))
        .max_decoding_message_size(64 << 20);
    let t = Instant::now();
    let request = StreamDrawPoolRequest {
        institution_id: school.into(),
        session_dates: vec![pb_date(day)],
        task_id: format!("tsk_{}", id()),
        expert_ids: vec![],
        ..Default::default()
    };
    let mut stream = client.stream_draw_pool(request).await?.into_inner();
    let mut ids = Vec::new();
    let mut end = None;
    while let Some(m) = stream.message().await? {
        ids.extend(m.experts.into_iter().map(|e| e.expert_id));
        if m.end.is_some() {
            end = m.end;
        }
    }
    let took = t.elapsed();
    match end {
        Some(e) if usize::try_from(e.expert_count).ok() == Some(ids.len()) => Ok((ids, took)),
        Some(e) => {
            Err(Status::internal(format!("the stream ended with count {} after {} experts", e.expert_count, ids.len())))
        }
        None => Err(Status::internal("the stream ended without its count")),
    }
}

/// `repeats` pool streams one after the other.
pub async fn pool_stream(registry: &Svc, school: &str, repeats: u64, want: usize, label: &str) -> Outcome {
    let school = school.to_owned();
    let mut outcome = Outcome { name: label.to_owned(), concurrency: 1, ..Default::default() };
    let started = Instant::now();
    for _ in 0..repeats {
        let t = Instant::now();
        let result = stream_pool(&registry.channel, &school, first_slot_day()).await.and_then(|(ids, _)| {
            if ids.len() == want { Ok(()) } else { Err(Status::internal(format!("{} experts, not {want}", ids.len()))) }
        });
        outcome.record(t.elapsed(), &result, &[]);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Sequential draws, each on its own slot, with the phases' histograms.
pub struct DrawRun {
    pub outcome: Outcome,
    pub create_task: Histogram,
    pub prepare: Histogram,
    pub witness: Histogram,
    pub execute: Histogram,
    pub candidates: usize,
}

pub async fn sequential_draws(d: &Drawers, slots: &Slots, count: u64, label: &str) -> DrawRun {
    let mut run = DrawRun {
        outcome: Outcome { name: label.to_owned(), concurrency: 1, ..Default::default() },
        create_task: Histogram::new(),
        prepare: Histogram::new(),
        witness: Histogram::new(),
        execute: Histogram::new(),
        candidates: 0,
    };
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        match draw_once(d, slots.take()).await {
            Ok(times) => {
                run.outcome.record(times.draw(), &Ok(()), &[]);
                run.create_task.record(times.create_task);
                run.prepare.record(times.prepare);
                run.witness.record(times.witness);
                run.execute.record(times.execute);
                run.candidates = times.candidates;
            }
            Err(s) => run.outcome.record(t.elapsed(), &Err(s), &[]),
        }
    }
    run.outcome.elapsed = started.elapsed();
    run
}

/// `count` draws from `concurrency` operators at once, every task on the same half-day: they
/// compete for the same experts, and the database and the locks decide.
pub async fn hot_pool(d: &Drawers, slot: (NaiveDate, HalfDay), concurrency: usize, count: u64) -> Outcome {
    let d = Arc::new(d.clone());
    load::run("draws, hot pool (same half-day)", concurrency, Stop::Requests(count), &[], move |_, _| {
        let d = d.clone();
        async move { draw_once(&d, slot).await.map(|_| ()) }
    })
    .await
}

/// Ranking the pool in this process with `crates/draw`, as ExecuteDraw ranks it.
pub fn rank_time(ids: &[String]) -> anyhow::Result<Duration> {
    let list = FrozenList::freeze_strs(ids)?;
    let seed = ServerSeed::generate()?;
    let seed = SeedString::new(&seed, None);
    let t = Instant::now();
    let order = rank(&list, &seed);
    let took = t.elapsed();
    anyhow::ensure!(order.len() == ids.len(), "ranked {} of {}", order.len(), ids.len());
    Ok(took)
}

/// GetExpert of random known experts as a county operator (masked personal data), `concurrency`
/// at once for `duration`.
pub async fn get_expert(
    channel: AuthedChannel,
    ids: Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
    label: &str,
) -> Outcome {
    load::run(label, concurrency, Stop::Duration(duration), &[], move |_, i| {
        let mut client = RegistryServiceClient::new(channel.clone());
        let id = ids[(i.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize].clone();
        async move {
            let answer = client.get_expert(GetExpertRequest { id }).await?.into_inner();
            if answer.expert.is_some() { Ok(()) } else { Err(Status::internal("no expert in the answer")) }
        }
    })
    .await
}

/// ListExperts, pages of 50 from the start, as a county operator.
pub async fn list_experts(channel: AuthedChannel, concurrency: usize, duration: Duration, label: &str) -> Outcome {
    load::run(label, concurrency, Stop::Duration(duration), &[], move |_, _| {
        let mut client = RegistryServiceClient::new(channel.clone());
        async move {
            let request = ListExpertsRequest {
                page: Some(PageRequest { page_size: 50, page_token: String::new() }),
                ..Default::default()
            };
            let answer = client.list_experts(request).await?.into_inner();
            if answer.experts.len() == 50 {
                Ok(())
            } else {
                Err(Status::internal(format!("{} experts", answer.experts.len())))
            }
        }
    })
    .await
}

/// The same single-row read through sqlx alone.
pub async fn sqlx_select(
    db: supervision_kit::Db,
    ids: Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
) -> Outcome {
    let db = Arc::new(db);
    load::run("baseline: sqlx SELECT experts by id", concurrency, Stop::Duration(duration), &[], move |_, i| {
        let db = db.clone();
        let id = ids[(i.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize].clone();
        async move { crate::baseline::select_expert(&db, &id).await }
    })
    .await
}

/// What one pass of the whole path took, by step.
#[derive(Debug, Default)]
pub struct PathRun {
    pub outcome: Outcome,
    pub draw: Histogram,
    pub accept: Histogram,
    pub report: Histogram,
    pub accept_report: Histogram,
    /// From AcceptReport's answer to the fee line being listed by finance (outbox delivery).
    pub fee_visible: Histogram,
}

/// task -> draw -> the primaries accept -> a worked session and its report -> the report accepted
/// -> the fee line in finance, `passes` times. Each pass moves dispatch's clock forward: to a
/// working morning 7 working days before the session, then to 16:00 on the session day.
pub async fn whole_path(registry: &Svc, dispatch: &Svc, finance: &Svc, school: &str, passes: u64) -> PathRun {
    let _ = registry;
    let calendar = Calendar::embedded();
    let d = Drawers::new(dispatch, school);
    let mut finance_reader = FinanceServiceClient::new(finance.as_role(Role::Finance, Some(Bureau::Pengjiang)));
    let mut run = PathRun {
        outcome: Outcome {
            name: "task -> draw -> accept -> report -> fee".into(),
            concurrency: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut morning = NaiveDate::from_ymd_opt(2026, 6, 1).expect("a date");
    let started = Instant::now();
    for pass in 0..passes {
        let session_day = calendar.add_working_days(morning, 6).expect("covered");
        dispatch.set_clock(Utc.from_utc_datetime(&morning.and_hms_opt(2, 0, 0).expect("a time")));
        let t = Instant::now();
        let result = async {
            let times = draw_once(&d, (session_day, HalfDay::Am)).await?;
            run.draw.record(times.draw());
            let t_accept = Instant::now();
            for (assignment_id, expert_id) in &times.primaries {
                let mut expert = DispatchServiceClient::new(dispatch.as_expert(expert_id));
                expert
                    .respond_to_assignment(RespondToAssignmentRequest {
                        request_id: id(),
                        assignment_id: assignment_id.clone(),
                        answer: Some(Answer::Accept(Accept { no_conflict_declared: true, note: String::new() })),
                        on_behalf: None,
                    })
                    .await?;
            }
            run.accept.record(t_accept.elapsed());
            // 16:00 on the session day.
            dispatch.set_clock(Utc.from_utc_datetime(&session_day.and_hms_opt(8, 0, 0).expect("a time")));
            let (assignment_id, expert_id) = times.primaries[0].clone();
            let mut worker = DispatchServiceClient::new(dispatch.as_expert(&expert_id));
            let t_report = Instant::now();
            worker
                .record_worked_sessions(RecordWorkedSessionsRequest {
                    request_id: id(),
                    assignment_id: assignment_id.clone(),
                    sessions: vec![WorkedSession {
                        task_session_id: String::new(),
                        date: Some(pb_date(session_day)),
                        half_day: HalfDay::Am as i32,
                        start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
                        minutes: 180,
                        note: String::new(),
                    }],
                    on_behalf: None,
                })
                .await?;
            let report = worker
                .submit_report(SubmitReportRequest {
                    request_id: id(),
                    assignment_id: assignment_id.clone(),
                    content: Some(ReportContent {
                        findings: format!("压测第{pass}次：考核按规程进行。"),
                        ..Default::default()
                    }),
                    on_behalf: None,
                })
                .await?
                .into_inner()
                .report
                .ok_or_else(|| Status::internal("no report in the answer"))?;
            run.report.record(t_report.elapsed());
            let mut op = d.operator.clone();
            let t_acc = Instant::now();
            op.accept_report(AcceptReportRequest { request_id: id(), report_id: report.id, note: String::new() })
                .await?;
            run.accept_report.record(t_acc.elapsed());
            let t_fee = Instant::now();
            loop {
                let lines = finance_reader
                    .list_fee_lines(ListFeeLinesRequest { assignment_id: assignment_id.clone(), ..Default::default() })
                    .await?
                    .into_inner()
                    .lines;
                if !lines.is_empty() {
                    break;
                }
                if t_fee.elapsed() > Duration::from_secs(30) {
                    return Err(Status::deadline_exceeded("no fee line within 30 s of the acceptance"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            run.fee_visible.record(t_fee.elapsed());
            Ok::<(), Status>(())
        }
        .await;
        run.outcome.record(t.elapsed(), &result, &[]);
        morning = calendar.add_working_days(session_day, 1).expect("covered");
    }
    run.outcome.elapsed = started.elapsed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_counted_as_left_can_be_taken_and_no_more_are_counted() {
        let slots = Slots::from(first_slot_day());
        let left = slots.left();
        // From June to the end of 2026: well over a hundred working days, two half-days each.
        assert!(left > 200, "{left}");
        assert_eq!(slots.take(), (first_slot_day(), HalfDay::Am));
        for taken in 1..left {
            assert_eq!(slots.left(), left - taken);
            slots.take();
        }
        assert_eq!(slots.left(), 0);
    }
}
