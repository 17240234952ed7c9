//! `supctl assignment|session|report|submission --output json` against a running registry and
//! dispatch: a task is drawn (prepare, witness, execute over gRPC: supctl has no draw-making
//! verbs), then through the binary only an operator enters one expert's phone acceptance and
//! another's WeChat decline with the times the bureau received them, the promoted backup accepts
//! with their own token, the first expert's sessions are recorded from a sign-in sheet, the
//! report is submitted from a findings file and accepted, and a submission goes through its
//! workflow to a follow-up task. Every step is read back; refused calls show the gRPC status,
//! the field violations and the exit code, and change nothing.

use std::process::Command;

use serde_json::Value;
use supervision_kit::auth::TokenRequest;
use supervision_proto::{
    common::{
        self, BureauCode, CivilServantStatus, ContactDetails, Date, ExpertCategory, ExpertKind, FundSource, HalfDay,
        IdentityDocument, IdentityDocumentType, Locality, Organisation, locality::Place,
    },
    dispatch::{
        Activity, ActivityKind, ActivitySubject, CreateTaskRequest, ExecuteDrawRequest, PrepareDrawRequest, TaskMode,
        TaskOrigin, TaskSession, WitnessDrawRequest, dispatch_service_client::DispatchServiceClient,
    },
    registry::{
        AppointExpertRequest, CategoryHolding, CreateInstitutionRequest, ExpertProfile, InstitutionType,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    Backend, Bureau, Role, RunningService, on_both_backends, service_acting_for, spawn_dispatch_with_registry,
};

on_both_backends!(
    answers_sessions_reports_and_submissions_run_through_supctl,
    recusals_cancellations_no_shows_corrections_and_voids_run_through_supctl,
    a_task_is_created_and_drawn_through_supctl,
);

/// What one supctl run gave: its exit code, stdout and stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON printed by a successful run.
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "supctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs supctl against `dispatch` with `token`, asking for JSON.
fn supctl(dispatch: &RunningService, token: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--dispatch", &format!("http://{}", dispatch.addr)])
        .args(["--token", token, "--config", "/dev/null"])
        .args(args)
        .output()
        .expect("supctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A token of the user `subject` acting as `role`.
fn user(subject: &str, role: Role, bureau: Option<Bureau>) -> String {
    testkit::identity::token_for(TokenRequest {
        subject: subject.into(),
        role,
        bureau,
        expert_id: None,
        ttl: std::time::Duration::from_secs(3600),
    })
}

/// Sets dispatch's clock to `(month, day, hour)` of 2026, UTC.
fn clock(dispatch: &RunningService, (month, day, hour): (u32, u32, u32)) {
    let target = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, month, day, hour, 0, 0).unwrap();
    dispatch.set_clock_offset((target - chrono::Utc::now()).num_seconds());
}

/// Expert `n` of Xinhui with an employer of their own, appointed from 2025-06-01; the identity
/// number is a valid resident one (GB 11643 check character).
async fn appoint_expert(registry: &RunningService, n: u32) {
    let body = format!("44070519790315{:03}", 100 + n);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let number = format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char);
    let organisation =
        Organisation {
            name: format!("新会第{n}技工学校"), credit_code: String::new(), institution_id: String::new()
        };
    let profile = ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("监督专家{n}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number,
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: format!("139{n:08}"), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(organisation),
            post: "讲师".into(),
            since: Some(Date { year: 2012, month: 3, day: 1 }),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: Some(common::Evidence { description: "高级技师证".into(), documents: vec![] }),
            verified: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let application = format!("app_{}", uuid::Uuid::now_v7().simple());
    let mut recruitment =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None));
    let request = AppointExpertRequest {
        request_id: application.clone(),
        application_id: application,
        profile: Some(profile),
        civil_servant_status: CivilServantStatus::None as i32,
        decision_date: Some(Date { year: 2025, month: 6, day: 1 }),
        term_start: None,
        replaces_expert_id: String::new(),
    };
    recruitment.appoint_expert(request).await.unwrap();
}

/// A Pengjiang task at `school` on 2026-06-`day` AM; its id.
async fn task(operator: &mut DispatchServiceClient<testkit::AuthedChannel>, school: &str, day: i32) -> String {
    let request = CreateTaskRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        dispatching_bureau: BureauCode::Pengjiang as i32,
        institution_id: school.into(),
        title: format!("焊工职业技能等级认定现场监督（6月{day}日）"),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: format!("2026-焊工-{day}"),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions: vec![TaskSession {
            date: Some(Date { year: 2026, month: 6, day }),
            half_day: HalfDay::Am as i32,
            ..Default::default()
        }],
        fund_source: FundSource::CityCountyEmployment as i32,
        ..Default::default()
    };
    operator.create_task(request).await.unwrap().into_inner().task.unwrap().id
}

/// Six experts, a school, a task on Monday 2026-06-08 drawn by operator-a and witnessed by
/// operator-b on 2026-06-01, and a second task for 2026-06-15 (the follow-up); the clock is then
/// 2026-06-01 10:00 in Asia/Shanghai. Returns (registry, dispatch, school, task, follow-up, draw).
async fn drawn(backend: Backend) -> (RunningService, RunningService, String, String, String, String) {
    let (registry, dispatch, school) = school_and_experts(backend).await;
    let mut operator =
        DispatchServiceClient::new(dispatch.as_user("operator-a", Role::CountyOperator, Some(Bureau::Pengjiang)));
    let mut colleague =
        DispatchServiceClient::new(dispatch.as_user("operator-b", Role::CountyOperator, Some(Bureau::Pengjiang)));
    let task_id = task(&mut operator, &school, 8).await;
    let follow_up = task(&mut operator, &school, 15).await;
    let prepare = PrepareDrawRequest { request_id: "prep".into(), task_id: task_id.clone(), kind: 0 };
    let draw_id = operator.prepare_draw(prepare).await.unwrap().into_inner().draw.unwrap().id;
    let witness = WitnessDrawRequest {
        request_id: "wit".into(),
        draw_id: draw_id.clone(),
        dice_digits: "27182818284590452353".into(),
    };
    colleague.witness_draw(witness).await.unwrap();
    operator.execute_draw(ExecuteDrawRequest { request_id: "exec".into(), draw_id: draw_id.clone() }).await.unwrap();
    (registry, dispatch, school, task_id, follow_up, draw_id)
}

/// Registry and dispatch with a Pengjiang school and six Xinhui experts, the clock at 2026-06-01
/// 10:00 in Asia/Shanghai. Returns (registry, dispatch, school).
async fn school_and_experts(backend: Backend) -> (RunningService, RunningService, String) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    clock(&dispatch, (6, 1, 2));
    let mut institutions = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let school = institutions
        .create_institution(CreateInstitutionRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            r#type: InstitutionType::VocationalTrainingSchool as i32,
            name: "蓬江焊接技能培训学校".into(),
            credit_code: "91440703MA4W00001M".into(),
            parent_id: String::new(),
            county: BureauCode::Pengjiang as i32,
            address: "江门市蓬江区".into(),
            head: "陈校长".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap()
        .id;
    for n in 1..=6 {
        appoint_expert(&registry, n).await;
    }
    (registry, dispatch, school)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn answers_sessions_reports_and_submissions_run_through_supctl(backend: Backend) {
    let (registry, dispatch, school, task_id, follow_up, draw_id) = drawn(backend).await;
    let operator = user("operator-a", Role::CountyOperator, Some(Bureau::Pengjiang));
    let auditor = user("auditor-1", Role::Auditor, None);
    let files = tempfile::tempdir().unwrap();

    // The draw and its roster, read through supctl.
    let draw = supctl(&dispatch, &auditor, &["draw", "show", &draw_id]).json();
    assert_eq!(draw["status"], "EXECUTED");
    let roster = supctl(&dispatch, &operator, &["assignment", "list", "--task", &task_id]).json();
    let roster = roster.as_array().unwrap().clone();
    assert_eq!(roster.len(), 4, "two primaries and two backups: {roster:?}");
    let primaries: Vec<&Value> = roster.iter().filter(|a| a["role"] == "PRIMARY").collect();
    assert_eq!(primaries.len(), 2);
    assert!(primaries.iter().all(|a| a["status"] == "NOTIFIED" && a["task_id"] == task_id.as_str()));
    assert!(roster.iter().filter(|a| a["role"] == "BACKUP").all(|a| a["status"] == "RESERVED"));
    let (first, second) = (text(&primaries[0]["id"]).to_owned(), text(&primaries[1]["id"]).to_owned());
    let first_expert = text(&primaries[0]["expert_id"]).to_owned();

    // On 2026-06-02 10:00 the operator enters yesterday's phone acceptance ...
    clock(&dispatch, (6, 2, 2));
    let accept = [
        "assignment",
        "accept",
        &first,
        "--no-conflict-declared",
        "--channel",
        "phone",
        "--received",
        "2026-06-01 16:45",
        "--entry-note",
        "operator-a 接听",
        "--request-id",
        "acc-first",
    ];
    let accepted = supctl(&dispatch, &operator, &accept);
    let a = accepted.json();
    assert_eq!(a["status"], "ACCEPTED");
    assert_eq!(a["response"]["kind"], "ACCEPT");
    assert_eq!(a["response"]["received"], "2026-06-01T16:45:00+08:00");
    assert_eq!(a["response"]["on_behalf"]["channel"], "PHONE");
    assert_eq!(a["response"]["on_behalf"]["note"], "operator-a 接听");
    assert_eq!(a["response"]["entered_by"], "operator-a (COUNTY_OPERATOR)");
    // The letter is issued on acceptance; `assignment get` names it.
    let letter = supctl(&dispatch, &auditor, &["letter", "get", &first]).json();
    assert_eq!((&letter["assignment_id"], &letter["status"]), (&first.as_str().into(), &"VALID".into()));
    let read = supctl(&dispatch, &auditor, &["assignment", "get", &first]).json();
    assert_eq!((&read["dispatch_letter_id"], &read["designated"]), (&letter["id"], &false.into()));
    assert_eq!(read["response_deadline"], "", "answered: nothing is awaited");
    assert_eq!(a["replacement"], Value::Null);
    // A retry with the same request id replays the answer.
    assert_eq!(supctl(&dispatch, &operator, &accept).stdout, accepted.stdout);

    // ... and this morning's WeChat decline, on time (the D3 deadline is 2026-06-03 17:30).
    let declined = supctl(
        &dispatch,
        &operator,
        &[
            "assignment",
            "decline",
            &second,
            "--reason",
            "work-conflict",
            "--detail",
            "单位安排出差",
            "--channel",
            "wechat",
            "--received",
            "2026-06-02 09:15",
        ],
    )
    .json();
    assert_eq!(declined["status"], "DECLINED_ON_TIME");
    assert_eq!(declined["response"]["decline_reason"], "WORK_CONFLICT");
    assert_eq!(declined["response"]["received"], "2026-06-02T09:15:00+08:00");
    let promoted = text(&declined["replacement"]["id"]).to_owned();
    assert_eq!(declined["replacement"]["status"], "NOTIFIED", "the first backup is promoted");
    assert_eq!(declined["replacement"]["replaces_assignment_id"], second.as_str());

    let replacements = supctl(&dispatch, &auditor, &["assignment", "replacements", &task_id]).json();
    assert_eq!(replacements.as_array().unwrap().len(), 1, "{replacements}");
    assert_eq!(replacements[0]["vacated_assignment_id"], second.as_str());
    assert_eq!(replacements[0]["reason"], "DECLINED");
    assert_eq!(replacements[0]["promoted_assignment_id"], promoted.as_str());

    // The promoted expert accepts with their own token: no channel, no received time.
    let promoted_expert = text(&declined["replacement"]["expert_id"]).to_owned();
    let own = testkit::identity::expert_token(&promoted_expert);
    let mine = supctl(&dispatch, &own, &["assignment", "accept", &promoted, "--no-conflict-declared"]).json();
    assert_eq!((&mine["status"], &mine["response"]["on_behalf"]), (&"ACCEPTED".into(), &Value::Null));
    let staffed = supctl(&dispatch, &auditor, &["task", "get", &task_id]).json();
    assert_eq!((&staffed["status"], &staffed["accepted_count"]), (&"STAFFED".into(), &2.into()));
    let accepted_list =
        supctl(&dispatch, &auditor, &["assignment", "list", "--task", &task_id, "--status", "accepted"]).json();
    let mut ids: Vec<&str> = accepted_list.as_array().unwrap().iter().map(|a| text(&a["id"])).collect();
    ids.sort_unstable();
    let mut expected = vec![first.as_str(), promoted.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // The session day, 16:00: the sign-in sheet's session, entered by the operator.
    clock(&dispatch, (6, 8, 8));
    let recorded = supctl(
        &dispatch,
        &operator,
        &[
            "session",
            "record",
            &first,
            "--worked",
            "2026-06-08,AM,09:00,180,签到表",
            "--channel",
            "in-person",
            "--received",
            "2026-06-08 12:10",
        ],
    )
    .json();
    assert_eq!(recorded["worked_sessions"].as_array().unwrap().len(), 1);
    assert_eq!(recorded["worked_sessions"][0]["start"], "09:00");
    assert!(!text(&recorded["worked_sessions"][0]["task_session_id"]).is_empty(), "matched to the task's session");

    // A half-day that disagrees with the start is refused field by field, and nothing changes.
    let refused = supctl(
        &dispatch,
        &operator,
        &[
            "session",
            "record",
            &first,
            "--worked",
            "2026-06-08,PM,09:00,180",
            "--channel",
            "in-person",
            "--received",
            "2026-06-08 12:20",
        ],
    );
    assert_eq!(refused.code, 13, "10 + INVALID_ARGUMENT: {}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(refused.stderr.contains("error: InvalidArgument"), "{}", refused.stderr);
    assert!(refused.stderr.contains("  sessions[0].half_day: must agree with start_time"), "{}", refused.stderr);
    let sessions = supctl(&dispatch, &auditor, &["session", "list", &first]).json();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert_eq!((&sessions[0]["half_day"], &sessions[0]["note"]), (&"AM".into(), &"签到表".into()));
    // A time supctl cannot read is a local error (exit 1) before any call.
    let unreadable = supctl(
        &dispatch,
        &operator,
        &[
            "session",
            "record",
            &first,
            "--worked",
            "2026-06-08,AM,09:00,180",
            "--channel",
            "phone",
            "--received",
            "yesterday",
        ],
    );
    assert_eq!(unreadable.code, 1, "{}", unreadable.stderr);
    assert!(unreadable.stderr.contains("`yesterday` is not a time"), "{}", unreadable.stderr);

    // The report, its findings read from a file, handed in on paper.
    let findings = "现场考核按规程进行。\n考评员资质、考场设置符合要求，签到表与实际到考人数一致。\n";
    let findings_file = files.path().join("findings.txt");
    std::fs::write(&findings_file, findings).unwrap();
    let submitted = supctl(
        &dispatch,
        &operator,
        &[
            "report",
            "submit",
            &first,
            "--findings-file",
            findings_file.to_str().unwrap(),
            "--suggestions",
            "建议考场增设计时器。",
            "--policy-problem",
            "补贴申领材料清单未公示",
            "--channel",
            "letter",
            "--received",
            "2026-06-08 15:00",
        ],
    )
    .json();
    assert_eq!((&submitted["status"], &submitted["revision"]), (&"SUBMITTED".into(), &0.into()));
    assert_eq!(submitted["content"]["findings"], findings);
    assert_eq!(submitted["content"]["policy_problems"][0]["description"], "补贴申领材料清单未公示");
    assert_eq!(submitted["on_behalf"]["channel"], "LETTER");
    assert_eq!(submitted["on_behalf"]["received"], "2026-06-08T15:00:00+08:00");
    assert_eq!(submitted["sessions"][0]["minutes"], 180);
    let report_id = text(&submitted["id"]).to_owned();

    let accept_report = ["report", "accept", &report_id, "--note", "内容完整", "--request-id", "acc-rep"];
    let done = supctl(&dispatch, &operator, &accept_report);
    let report = done.json();
    assert_eq!((&report["status"], &report["revision"]), (&"ACCEPTED".into(), &1.into()));
    assert_eq!(report["accepted_by"], "operator-a (COUNTY_OPERATOR)");
    assert_eq!(supctl(&dispatch, &operator, &accept_report).stdout, done.stdout, "a retry replays");
    // Accepting it again under a new request id is refused and changes nothing.
    let again = supctl(&dispatch, &operator, &["report", "accept", &report_id, "--request-id", "acc-rep-2"]);
    assert_eq!(again.code, 19, "10 + FAILED_PRECONDITION: {}", again.stderr);
    assert!(again.stderr.starts_with("error: FailedPrecondition: "), "{}", again.stderr);
    assert_eq!(supctl(&dispatch, &auditor, &["report", "get", &report_id]).json(), report);

    let completed = supctl(&dispatch, &auditor, &["assignment", "get", &first]).json();
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!((&completed["report_id"], &completed["fee_revision"]), (&report_id.as_str().into(), &1.into()));
    let listed = supctl(&dispatch, &auditor, &["report", "list", "--task", &task_id, "--status", "accepted"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], report_id.as_str());
    let none = supctl(&dispatch, &auditor, &["report", "list", "--task", &task_id, "--status", "returned"]).json();
    assert_eq!(none, Value::Array(vec![]));

    // A violation the expert phoned in, through the city's handling to a follow-up task.
    let admin = user("city-admin", Role::CityAdmin, None);
    let handler = user("city-op-1", Role::CityOperator, None);
    let content_file = files.path().join("tip.txt");
    std::fs::write(&content_file, "学员反映该校收取教材费后未发放教材。").unwrap();
    let created = supctl(
        &dispatch,
        &admin,
        &[
            "submission",
            "create",
            "--type",
            "violation",
            "--expert",
            &first_expert,
            "--source-party",
            "worker",
            "--institution",
            &school,
            "--subject",
            "收费后未发放教材",
            "--content-file",
            content_file.to_str().unwrap(),
            "--channel",
            "phone",
            "--received",
            "2026-06-08 15:30",
        ],
    )
    .json();
    assert_eq!((&created["status"], &created["type"]), (&"RECEIVED".into(), &"VIOLATION".into()));
    assert_eq!(created["content"], "学员反映该校收取教材费后未发放教材。");
    assert_eq!((&created["source_party"], &created["on_behalf"]["channel"]), (&"WORKER".into(), &"PHONE".into()));
    let submission = text(&created["id"]).to_owned();

    let assigned =
        supctl(&dispatch, &admin, &["submission", "assign", &submission, "--handler", "city-op-1", "--note", "请核查"])
            .json();
    assert_eq!((&assigned["status"], &assigned["handler"]), (&"ASSIGNED".into(), &"city-op-1".into()));
    let answer_file = files.path().join("answer.txt");
    std::fs::write(&answer_file, "经核查属实，已责令退费并安排复查。").unwrap();
    let answered = supctl(
        &dispatch,
        &handler,
        &["submission", "answer", &submission, "--answer-file", answer_file.to_str().unwrap()],
    )
    .json();
    assert_eq!(
        (&answered["status"], &answered["answer"]),
        (&"ANSWERED".into(), &"经核查属实，已责令退费并安排复查。".into())
    );
    let closed = supctl(
        &dispatch,
        &handler,
        &["submission", "close", &submission, "--note", "处理完毕", "--follow-up-task", &follow_up],
    )
    .json();
    assert_eq!((&closed["status"], &closed["follow_up_task_id"]), (&"CLOSED".into(), &follow_up.as_str().into()));
    // Closed is final: refused, unchanged.
    let reopen = supctl(&dispatch, &admin, &["submission", "close", &submission, "--note", "再次关闭"]);
    assert_eq!(reopen.code, 19, "{}", reopen.stderr);
    let read = supctl(&dispatch, &auditor, &["submission", "get", &submission]).json();
    assert_eq!(read, closed);
    let closed_list = supctl(&dispatch, &auditor, &["submission", "list", "--status", "closed"]).json();
    assert_eq!(
        closed_list.as_array().unwrap().iter().map(|s| text(&s["id"])).collect::<Vec<_>>(),
        [submission.as_str()]
    );

    // The table form prints the same rows for people.
    let table = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--dispatch", &format!("http://{}", dispatch.addr), "--token", &auditor, "--config", "/dev/null"])
        .args(["assignment", "replacements", &task_id])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains(&second) && table.contains("DECLINED"), "{table}");
    registry.stop().await;
    dispatch.stop().await;
}

async fn recusals_cancellations_no_shows_corrections_and_voids_run_through_supctl(backend: Backend) {
    let (registry, dispatch, _, task_id, _, _) = drawn(backend).await;
    let operator = user("operator-a", Role::CountyOperator, Some(Bureau::Pengjiang));
    let auditor = user("auditor-1", Role::Auditor, None);
    let files = tempfile::tempdir().unwrap();
    let roster =
        supctl(&dispatch, &auditor, &["assignment", "list", "--task", &task_id, "--status", "notified"]).json();
    let roster = roster.as_array().unwrap().clone();
    assert_eq!(roster.len(), 2, "the two primaries are notified");
    let (first, second) = (text(&roster[0]["id"]).to_owned(), text(&roster[1]["id"]).to_owned());
    let expert_of = |a: &Value| testkit::identity::expert_token(text(&a["expert_id"]));
    let first_expert = expert_of(&roster[0]);
    clock(&dispatch, (6, 2, 2));
    let mine = supctl(&dispatch, &first_expert, &["assignment", "accept", &first, "--no-conflict-declared"]).json();
    assert_eq!(mine["status"], "ACCEPTED");

    // A recusal phoned in: the relation is recorded, a backup takes the place.
    let recused = supctl(
        &dispatch,
        &operator,
        &[
            "assignment",
            "recuse",
            &second,
            "--relation",
            "past-employment",
            "--detail",
            "曾在该校任教",
            "--channel",
            "phone",
            "--received",
            "2026-06-02 08:50",
        ],
    )
    .json();
    assert_eq!(
        (&recused["status"], &recused["response"]["recusal_relation"]),
        (&"RECUSED".into(), &"PAST_EMPLOYMENT".into())
    );
    let promoted = recused["replacement"].clone();
    assert_eq!(promoted["status"], "NOTIFIED");

    // The bureau cancels the promoted backup's place; the next backup takes it.
    let cancelled =
        supctl(&dispatch, &operator, &["assignment", "cancel", text(&promoted["id"]), "--reason", "专家临时借调省厅"])
            .json();
    assert_eq!((&cancelled["status"], &cancelled["cancel_reason"]), (&"CANCELLED".into(), &"专家临时借调省厅".into()));
    let last = cancelled["replacement"].clone();
    assert_eq!(last["replaces_assignment_id"], promoted["id"]);
    let accepted =
        supctl(&dispatch, &expert_of(&last), &["assignment", "accept", text(&last["id"]), "--no-conflict-declared"])
            .json();
    assert_eq!(accepted["status"], "ACCEPTED");
    let replacements = supctl(&dispatch, &auditor, &["assignment", "replacements", &task_id]).json();
    let reasons: Vec<&str> = replacements.as_array().unwrap().iter().map(|r| text(&r["reason"])).collect();
    assert_eq!(reasons, ["RECUSED", "CANCELLED"]);

    // The session day: the expert attaches the sign-in sheet, records the session and reports,
    // citing the sheet as a violation's evidence (dispatch refuses every id in the content's own
    // `attachment_ids` still, so `--attachment` is not used here).
    clock(&dispatch, (6, 8, 8));
    let sheet = files.path().join("签到表.pdf");
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    std::fs::write(&sheet, pdf).unwrap();
    let stored = supctl(&dispatch, &first_expert, &["report", "attach", &first, sheet.to_str().unwrap()]).json();
    let attachment = text(&stored["id"]).to_owned();
    assert!(attachment.starts_with("att_"));
    assert_eq!((&stored["media_type"], &stored["size_bytes"]), (&"application/pdf".into(), &pdf.len().into()));
    let recorded =
        supctl(&dispatch, &first_expert, &["session", "record", &first, "--worked", "2026-06-08,AM,08:30,210"]).json();
    let session_id = text(&recorded["worked_sessions"][0]["task_session_id"]).to_owned();
    let violation = format!("签到表与实际人数不符 @{attachment}");
    let submit = |findings: &str| {
        supctl(
            &dispatch,
            &first_expert,
            &["report", "submit", &first, "--findings", findings, "--violation", &violation],
        )
        .json()
    };
    let report = submit("考核基本按规程进行。");
    assert_eq!(report["content"]["violations"][0]["description"], "签到表与实际人数不符");
    assert_eq!(report["content"]["violations"][0]["attachment_ids"][0], attachment.as_str());
    assert_eq!(report["on_behalf"], Value::Null);
    let report_id = text(&report["id"]).to_owned();

    let returned =
        supctl(&dispatch, &operator, &["report", "return", &report_id, "--reason", "请补充考场设置情况"]).json();
    assert_eq!((&returned["status"], &returned["return_reason"]), (&"RETURNED".into(), &"请补充考场设置情况".into()));
    let resubmitted = submit("考核基本按规程进行；考场设置符合要求。");
    assert_eq!((&resubmitted["id"], &resubmitted["status"]), (&report_id.as_str().into(), &"SUBMITTED".into()));
    let accepted = supctl(&dispatch, &operator, &["report", "accept", &report_id]).json();
    assert_eq!(accepted["revision"], 1);

    // A correction of the sessions keeps the content; one of the findings keeps the sessions.
    let corrected = supctl(
        &dispatch,
        &operator,
        &["report", "correct", &report_id, "--reason", "签到表复核", "--worked", "2026-06-08,AM,08:30,180"],
    )
    .json();
    assert_eq!((&corrected["revision"], &corrected["sessions"][0]["minutes"]), (&2.into(), &180.into()));
    assert_eq!(corrected["content"], accepted["content"]);
    assert_eq!(corrected["corrections"][0]["reason"], "签到表复核");
    let findings_file = files.path().join("findings.txt");
    std::fs::write(&findings_file, "考核按规程进行；考场设置符合要求；另见签到表。").unwrap();
    let reworded = supctl(
        &dispatch,
        &operator,
        &["report", "correct", &report_id, "--reason", "补充说明", "--findings-file", findings_file.to_str().unwrap()],
    )
    .json();
    assert_eq!(reworded["revision"], 3);
    assert_eq!(reworded["content"]["findings"], "考核按规程进行；考场设置符合要求；另见签到表。");
    assert_eq!(reworded["content"]["violations"], accepted["content"]["violations"], "the parts not given stay");
    assert_eq!(reworded["sessions"], corrected["sessions"]);
    let nothing = supctl(&dispatch, &operator, &["report", "correct", &report_id, "--reason", "无"]);
    assert_eq!(nothing.code, 1, "nothing to correct is refused locally: {}", nothing.stderr);

    // The evidence comes back byte for byte.
    let copy = files.path().join("copy.pdf");
    let fetched =
        supctl(&dispatch, &auditor, &["report", "attachment", &attachment, "--out", copy.to_str().unwrap()]).json();
    assert_eq!(fetched["sha256"], stored["sha256"]);
    assert_eq!(std::fs::read(&copy).unwrap(), pdf);

    // The other member did not come: NO_SHOW, and a team of one left is BLOCKED (D7).
    let absent = supctl(
        &dispatch,
        &operator,
        &["assignment", "no-show", text(&last["id"]), "--session", &session_id, "--note", "未到场，电话未接"],
    )
    .json();
    assert_eq!((&absent["status"], &absent["task_status"]), (&"NO_SHOW".into(), &"BLOCKED".into()));
    // Its no-show record keeps the note; the session missed is in the audit entry only.
    let read = supctl(&dispatch, &auditor, &["assignment", "get", text(&last["id"])]).json();
    assert_eq!((&read["status"], &read["no_show"]["note"]), (&"NO_SHOW".into(), &"未到场，电话未接".into()));

    // The report is voided; an auditor may not void (17), nothing changes.
    let refused = supctl(&dispatch, &auditor, &["report", "void", &report_id, "--reason", "x"]);
    assert_eq!(refused.code, 17, "10 + PERMISSION_DENIED: {}", refused.stderr);
    assert_eq!(supctl(&dispatch, &auditor, &["report", "get", &report_id]).json(), reworded);
    let voided =
        supctl(&dispatch, &operator, &["report", "void", &report_id, "--reason", "核实存在虚报，作废报告"]).json();
    assert_eq!((&voided["status"], &voided["revision"]), (&"VOIDED".into(), &4.into()));
    assert_eq!(
        (&voided["void_reason"], &voided["voided_by"]),
        (&"核实存在虚报，作废报告".into(), &"operator-a (COUNTY_OPERATOR)".into())
    );
    registry.stop().await;
    dispatch.stop().await;
}

/// The whole draw through the binary: the operator creates and updates a task, prepares its draw,
/// may not witness it (17), a colleague witnesses with dice, the operator executes, and the
/// auditor's client-side `draw verify` passes. A second task's prepared draw is abandoned and the
/// task cancelled.
async fn a_task_is_created_and_drawn_through_supctl(backend: Backend) {
    let (registry, dispatch, school) = school_and_experts(backend).await;
    let operator = user("operator-a", Role::CountyOperator, Some(Bureau::Pengjiang));
    let colleague = user("operator-b", Role::CountyOperator, Some(Bureau::Pengjiang));
    let auditor = user("auditor-1", Role::Auditor, None);

    let create = [
        "task",
        "create",
        "--bureau",
        "440703",
        "--institution",
        &school,
        "--title",
        "焊工职业技能等级认定现场监督",
        "--subject",
        "skill-level",
        "--activity",
        "assessment",
        "--reference",
        "2026-焊工-8",
        "--session",
        "2026-06-08,AM,09:00,11:30",
        "--fund-source",
        "city-county-employment",
        "--request-id",
        "create-welding",
    ];
    let created = supctl(&dispatch, &operator, &create);
    let task = created.json();
    let task_id = text(&task["id"]).to_owned();
    assert_eq!((&task["status"], &task["team_size"], &task["mode"]), (&"OPEN".into(), &2.into(), &"ON_SITE".into()));
    assert_eq!(
        (&task["activity"]["subject"], &task["activity"]["kind"]),
        (&"SKILL_LEVEL".into(), &"ASSESSMENT".into())
    );
    assert_eq!(task["fund_source"], "CITY_COUNTY_EMPLOYMENT");
    let session = &task["sessions"][0];
    assert!(text(&session["id"]).starts_with("ses_"), "the id `assignment no-show --session` takes: {session}");
    assert_eq!(
        (&session["date"], &session["half_day"], &session["planned_start"], &session["planned_end"]),
        (&"2026-06-08".into(), &"AM".into(), &"09:00".into(), &"11:30".into())
    );
    // The same request id replays the creation rather than making a second task.
    assert_eq!(supctl(&dispatch, &operator, &create).stdout, created.stdout);

    // A session that is not DATE,AM|PM is refused before any call.
    let bad = supctl(&dispatch, &operator, &["task", "update", &task_id, "--session", "2026-06-08,noon"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let updated =
        supctl(&dispatch, &operator, &["task", "update", &task_id, "--title", "焊工认定现场监督（第一批）"]).json();
    assert_eq!(updated["title"], "焊工认定现场监督（第一批）");
    assert_eq!(updated["revision"].as_i64(), task["revision"].as_i64().map(|r| r + 1));
    assert_eq!(updated["sessions"], task["sessions"], "sessions not named keep their ids");
    // A stale revision is refused (10 + ABORTED) and changes nothing.
    let stale = supctl(
        &dispatch,
        &operator,
        &["task", "update", &task_id, "--title", "x", "--expected-revision", &task["revision"].to_string()],
    );
    assert_eq!(stale.code, 20, "10 + ABORTED: {}", stale.stderr);
    assert_eq!(supctl(&dispatch, &auditor, &["task", "get", &task_id]).json(), updated);

    let prepared = supctl(&dispatch, &operator, &["draw", "prepare", "--task", &task_id]).json();
    let draw_id = text(&prepared["id"]).to_owned();
    assert_eq!((&prepared["status"], &prepared["kind"]), (&"PREPARED".into(), &"INITIAL".into()));
    assert_eq!(prepared["server_seed"], "", "the seed stays hidden until execution");

    // The operator may not witness their own draw (D12): 10 + PERMISSION_DENIED, nothing changes.
    let own = supctl(&dispatch, &operator, &["draw", "witness", "--draw", &draw_id, "--dice", "31415926535897932384"]);
    assert_eq!(own.code, 17, "{}", own.stderr);
    assert!(own.stderr.contains("PermissionDenied"), "{}", own.stderr);
    let unchanged = supctl(&dispatch, &auditor, &["draw", "show", &draw_id]).json();
    assert_eq!((&unchanged["status"], &unchanged["witness"]), (&"PREPARED".into(), &"".into()));

    let witnessed = supctl(
        &dispatch,
        &colleague,
        &["draw", "witness", "--draw", &draw_id, "--dice", "27182818284590452353", "--request-id", "wit-1"],
    )
    .json();
    assert_eq!(
        (&witnessed["status"], &witnessed["dice_digits"]),
        (&"WITNESSED".into(), &"27182818284590452353".into())
    );
    assert_eq!(witnessed["witness"], "operator-b (ROLE_COUNTY_OPERATOR)");

    let executed = supctl(&dispatch, &operator, &["draw", "execute", "--draw", &draw_id]).json();
    assert_eq!(executed["status"], "EXECUTED");
    assert!(!text(&executed["server_seed"]).is_empty());
    let assignments = executed["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 4, "two primaries and two backups: {assignments:?}");
    assert_eq!(assignments.iter().filter(|a| a["role"] == "PRIMARY" && a["status"] == "NOTIFIED").count(), 2);
    // A primary waiting for an answer shows when it stops waiting.
    let primary = assignments.iter().find(|a| a["role"] == "PRIMARY").unwrap();
    let waiting = supctl(&dispatch, &operator, &["assignment", "get", text(&primary["id"])]).json();
    assert!(!text(&waiting["response_deadline"]).is_empty(), "{waiting}");

    let verified = supctl(&dispatch, &auditor, &["draw", "verify", &draw_id]).json();
    assert_eq!((&verified["verified"], &verified["mismatches"]), (&true.into(), &serde_json::json!([])));
    let staffing = supctl(&dispatch, &auditor, &["task", "get", &task_id]).json();
    assert_eq!(staffing["status"], "STAFFING");

    // A second task: its prepared draw is abandoned, then the task is cancelled.
    let mut second = create.to_vec();
    second[15] = "2026-06-15,PM,14:30";
    second[19] = "create-second";
    let other = supctl(&dispatch, &operator, &second).json();
    let other_id = text(&other["id"]).to_owned();
    assert_ne!(other_id, task_id);
    let draft = supctl(&dispatch, &operator, &["draw", "prepare", "--task", &other_id]).json();
    let abandoned = supctl(
        &dispatch,
        &operator,
        &["draw", "abandon", "--draw", text(&draft["id"]), "--reason", "机构调整考核时间"],
    )
    .json();
    assert_eq!((&abandoned["status"], &abandoned["abandon_reason"]), (&"ABANDONED".into(), &"机构调整考核时间".into()));
    let cancelled = supctl(&dispatch, &operator, &["task", "cancel", &other_id, "--reason", "机构取消本批考核"]).json();
    assert_eq!((&cancelled["status"], &cancelled["cancel_reason"]), (&"CANCELLED".into(), &"机构取消本批考核".into()));

    // `draw list`: by task, and by state across the bureau.
    let listed = supctl(&dispatch, &auditor, &["draw", "list", "--task", &task_id]).json();
    let draws = listed["draws"].as_array().unwrap();
    assert_eq!(draws.len(), 1, "{listed}");
    assert_eq!(
        (text(&draws[0]["id"]), &draws[0]["kind"], &draws[0]["status"]),
        (draw_id.as_str(), &"INITIAL".into(), &"EXECUTED".into())
    );
    let abandoned_list =
        supctl(&dispatch, &auditor, &["draw", "list", "--status", "abandoned", "--bureau", "440703"]).json();
    let ids: Vec<&str> = abandoned_list["draws"].as_array().unwrap().iter().map(|d| text(&d["id"])).collect();
    assert_eq!(ids, [text(&draft["id"])]);
    registry.stop().await;
    dispatch.stop().await;
}
