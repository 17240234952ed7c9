//! `supctl relation|incident|meeting|training|activity ... --output json` against a running
//! registry: each noun's main verbs, what they print, and their effects read back over gRPC;
//! refused calls exit with 10 + the gRPC code and change nothing.

use std::process::Command;

use chrono::Datelike;
use supervision_proto::{
    common::{
        BureauCode, CivilServantStatus, ContactDetails, Date, Evidence, ExpertCategory, ExpertKind, IdentityDocument,
        IdentityDocumentType, Locality, Organisation, locality::Place,
    },
    registry::{
        AppointExpertRequest, CategoryHolding, CreateInstitutionRequest, ExpertProfile, GetExpertRequest,
        GetIncidentRequest, GetMeetingRequest, IncidentStatus, InstitutionType, ListPublicityActivitiesRequest,
        ListRelationsRequest, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, service_acting_for, spawn_registry, token,
};

on_both_backends!(
    relations_are_recorded_listed_found_as_conflicts_and_ended,
    an_incident_is_recorded_stated_and_decided,
    a_meeting_is_created_attended_minuted_and_counted,
    training_marks_experts_trained_and_activities_are_logged,
);

/// Exit codes of supctl for refused calls: 10 + the gRPC code.
const INVALID_ARGUMENT: i32 = 13;
const FAILED_PRECONDITION: i32 = 19;
const PERMISSION_DENIED: i32 = 17;

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";
/// A valid credit code, not the experts' employer.
const INSTITUTION_CODE: &str = "91110000600037341L";

/// What a supctl run left: its exit code, stdout and stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON it printed, after checking it succeeded.
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "supctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs supctl against `registry` with `token`.
fn supctl_with(registry: &RunningService, token: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--registry", &format!("http://{}", registry.addr)])
        .args(["--token", token])
        .args(["--config", "/dev/null"])
        .args(args)
        .output()
        .expect("supctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs supctl against `registry` as CITY_ADMIN.
fn supctl(registry: &RunningService, args: &[&str]) -> Run {
    supctl_with(registry, &token(Role::CityAdmin, None), args)
}

fn admin(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None))
}

/// Today in Jiangmen, as `YYYY-MM-DD` and as a contract date.
fn today() -> (String, Date) {
    let d = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    (d.to_string(), Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 })
}

/// An expert appointed today through recruitment's identity (ACTIVE); their id.
async fn appointed(registry: &RunningService, name: &str, number: &str) -> String {
    let profile = ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: name.into(),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: number.into(),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: "13812345678".into(), ..Default::default() }),
        employer: Some(supervision_proto::common::Employer {
            organisation: Some(Organisation {
                name: "江门市示例职业培训学校".into(),
                credit_code: "91350100M000100Y43".into(),
                institution_id: String::new(),
            }),
            post: "教师".into(),
            since: Some(Date { year: 2015, month: 9, day: 1 }),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: Some(Evidence { description: "技师证".into(), documents: vec![] }),
            verified: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let application = format!("app_{}", uuid::Uuid::now_v7().simple());
    let mut recruitment =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None));
    recruitment
        .appoint_expert(AppointExpertRequest {
            request_id: application.clone(),
            application_id: application,
            profile: Some(profile),
            civil_servant_status: CivilServantStatus::None as i32,
            decision_date: Some(today().1),
            term_start: None,
            replaces_expert_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap()
        .id
}

async fn relations_are_recorded_listed_found_as_conflicts_and_ended(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert = appointed(&registry, "李明", ID_A).await;
    let institution = admin(&registry)
        .create_institution(CreateInstitutionRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            r#type: InstitutionType::TechnicalSchool as i32,
            name: "江门市示例技工学校".into(),
            credit_code: INSTITUTION_CODE.into(),
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

    // record: a directorship at the institution, and a relative there (to be marked in error).
    let director = supctl(
        &registry,
        &[
            "relation",
            "record",
            "--expert",
            &expert,
            "--type",
            "director-or-supervisor",
            "--institution",
            &institution,
            "--from",
            "2024-01-01",
            "--evidence",
            "工商登记信息",
            "--note",
            "任董事",
        ],
    )
    .json();
    assert!(director["id"].as_str().unwrap().starts_with("rel_"), "{director}");
    let fields = ["expert_id", "type", "counterparty", "from", "to", "source", "note"].map(|f| &director[f]);
    assert_eq!(fields, [&*expert, "DIRECTOR_OR_SUPERVISOR", &institution, "2024-01-01", "", "BUREAU", "任董事"]);
    let relative = supctl(
        &registry,
        &[
            "relation",
            "record",
            "--expert",
            &expert,
            "--type",
            "relative",
            "--institution",
            &institution,
            "--counterpart",
            "李强",
            "--counterpart-role",
            "校长",
            "--from",
            "2020-05-01",
        ],
    )
    .json();
    assert_eq!(relative["counterpart_name"], "李强");
    let err = supctl(
        &registry,
        &["relation", "record", "--expert", &expert, "--type", "astronaut", "--institution", &institution],
    );
    assert_eq!(err.code, 1, "a type supctl does not know is refused before any call: {}", err.stderr);

    // list: both, as rows.
    let rows = supctl(&registry, &["relation", "list", "--expert", &expert]).json();
    let mut listed: Vec<(&str, &str)> =
        rows.as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r["type"].as_str().unwrap())).collect();
    listed.sort_unstable();
    let mut expected = vec![
        (director["id"].as_str().unwrap(), "DIRECTOR_OR_SUPERVISOR"),
        (relative["id"].as_str().unwrap(), "RELATIVE"),
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);

    // conflicts: the expert for this institution, with both reasons.
    let (day, _) = today();
    let rows =
        supctl(&registry, &["relation", "conflicts", "--institution", &institution, "--from", &day, "--to", &day])
            .json();
    let mut reasons: Vec<(&str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["expert_id"].as_str().unwrap(), r["relation"].as_str().unwrap(), r["relation_id"].as_str().unwrap())
        })
        .collect();
    reasons.sort_unstable();
    let mut expected = vec![
        (expert.as_str(), "DIRECTOR_OR_SUPERVISOR", director["id"].as_str().unwrap()),
        (expert.as_str(), "RELATIVE", relative["id"].as_str().unwrap()),
    ];
    expected.sort_unstable();
    assert_eq!(reasons, expected, "{rows}");

    // end: the relative marked in error; the directorship ended today. Nothing is deleted.
    let ended = supctl(
        &registry,
        &["relation", "end", relative["id"].as_str().unwrap(), "--in-error", "--reason", "录入错误，并非亲属"],
    )
    .json();
    assert_eq!(
        (ended["recorded_in_error"].as_bool(), ended["end_reason"].as_str()),
        (Some(true), Some("录入错误，并非亲属"))
    );
    let ended = supctl(
        &registry,
        &["relation", "end", director["id"].as_str().unwrap(), "--end-date", &day, "--reason", "已辞去董事职务"],
    )
    .json();
    assert_eq!(ended["to"], day.as_str());
    let err = supctl(
        &registry,
        &["relation", "end", director["id"].as_str().unwrap(), "--end-date", &day, "--reason", "again"],
    );
    assert_eq!(err.code, FAILED_PRECONDITION, "an ended relation is not ended twice: {}", err.stderr);
    let held = admin(&registry)
        .list_relations(ListRelationsRequest { expert_id: expert.clone(), include_ended: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .relations;
    assert_eq!(held.len(), 2, "ended and in-error relations are kept");
    // The directorship still holds today, its last day; the relative recorded in error does not.
    let current = supctl(&registry, &["relation", "list", "--expert", &expert]).json();
    let current: Vec<(&str, &str)> =
        current.as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r["to"].as_str().unwrap())).collect();
    assert_eq!(current, [(director["id"].as_str().unwrap(), day.as_str())]);
    let all = supctl(&registry, &["relation", "list", "--expert", &expert, "--include-ended"]).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    registry.stop().await;
}

async fn an_incident_is_recorded_stated_and_decided(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert = appointed(&registry, "李明", ID_A).await;

    let incident = supctl(
        &registry,
        &[
            "incident",
            "record",
            "--expert",
            &expert,
            "--kind",
            "discipline-breach",
            "--rule",
            "confidentiality",
            "--description",
            "在评价结束前向机构透露抽查名单",
            "--evidence",
            "机构举报材料",
        ],
    )
    .json();
    let id = incident["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("inc_"), "{incident}");
    assert_eq!(
        (incident["kind"].as_str(), incident["rule"].as_str(), incident["source"].as_str()),
        (Some("DISCIPLINE_BREACH"), Some("CONFIDENTIALITY"), Some("BUREAU"))
    );
    assert_eq!(incident["reporting_bureau"], "JIANGMEN_CITY", "a city caller reports as the city");
    assert_eq!(incident["status"], "REPORTED");
    let err = supctl(
        &registry,
        &["incident", "record", "--expert", &expert, "--kind", "discipline-breach", "--description", "no rule named"],
    );
    assert_eq!(err.code, INVALID_ARGUMENT, "a breach names its rule: {}", err.stderr);

    let got = supctl(&registry, &["incident", "get", &id]).json();
    assert_eq!(got["description"], "在评价结束前向机构透露抽查名单");
    let rows = supctl(&registry, &["incident", "list", "--expert", &expert]).json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the refused record wrote nothing");
    assert_eq!((rows[0]["id"].as_str(), rows[0]["status"].as_str()), (Some(id.as_str()), Some("REPORTED")));

    // statement: staff enter the one they received, saying how (D16).
    let err = supctl(&registry, &["incident", "statement", &id, "--text", "本人陈述"]);
    assert_eq!(err.code, INVALID_ARGUMENT, "staff say how they received it: {}", err.stderr);
    let stated = supctl(
        &registry,
        &["incident", "statement", &id, "--text", "名单系误发，已及时撤回", "--received-by", "letter"],
    )
    .json();
    assert_eq!(stated["statements"], serde_json::json!(["名单系误发，已及时撤回"]));

    // decide: a warning; a second decision is refused.
    let decided = supctl(
        &registry,
        &[
            "incident",
            "decide",
            &id,
            "--finding",
            "substantiated",
            "--outcome",
            "warning",
            "--note",
            "经查属实，予以警告",
        ],
    )
    .json();
    assert_eq!(
        (decided["status"].as_str(), decided["finding"].as_str(), decided["outcome"].as_str()),
        (Some("DECIDED"), Some("SUBSTANTIATED"), Some("WARNING"))
    );
    assert_eq!(decided["decision_note"], "经查属实，予以警告");
    let err = supctl(
        &registry,
        &["incident", "decide", &id, "--finding", "not-substantiated", "--outcome", "no-action", "--note", "x"],
    );
    assert_eq!(err.code, FAILED_PRECONDITION, "{}", err.stderr);
    let held = admin(&registry).get_incident(GetIncidentRequest { id: id.clone() }).await.unwrap().into_inner();
    let held = held.incident.unwrap();
    assert_eq!(held.status, IncidentStatus::Decided as i32);
    assert_eq!(held.decision.unwrap().note, "经查属实，予以警告", "the refused decision changed nothing");
    let rows = supctl(&registry, &["incident", "list", "--status", "decided"]).json();
    assert_eq!(rows[0]["outcome"], "WARNING");
    registry.stop().await;
}

async fn a_meeting_is_created_attended_minuted_and_counted(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let a = appointed(&registry, "李明", ID_A).await;
    let b = appointed(&registry, "王芳", ID_B).await;
    let (day, date) = today();
    let year = date.year.to_string();

    // A plenary without --invite invites every active expert.
    let meeting = supctl(
        &registry,
        &[
            "meeting",
            "create",
            "--type",
            "plenary",
            "--title",
            "2026 年度全体专家会议",
            "--date",
            &day,
            "--location",
            "市人社局三楼会议室",
            "--agenda",
            "通报年度监督情况",
        ],
    )
    .json();
    let id = meeting["id"].as_str().unwrap().to_owned();
    assert_eq!(meeting["type"], "PLENARY");
    let mut invited: Vec<String> = serde_json::from_value(meeting["invited"].clone()).unwrap();
    invited.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(invited, both);
    let err = supctl(&registry, &["meeting", "create", "--type", "thematic", "--title", "专题会", "--date", &day]);
    assert_eq!(err.code, INVALID_ARGUMENT, "a thematic meeting names its invitees: {}", err.stderr);

    let attended = supctl(&registry, &["meeting", "attendance", &id, "--expert", &a]).json();
    assert_eq!(attended["attended"], serde_json::json!([a]));
    let minuted = supctl(
        &registry,
        &[
            "meeting",
            "minutes",
            &id,
            "--minutes",
            "会议通报了年度监督情况。",
            "--opinion",
            &format!("{a}=建议增加培训场次"),
        ],
    )
    .json();
    assert_eq!(minuted["minutes"], "会议通报了年度监督情况。");
    assert_eq!(minuted["opinions"], serde_json::json!([{ "expert_id": a, "text": "建议增加培训场次" }]));
    let err = supctl(&registry, &["meeting", "minutes", &id, "--minutes", "x", "--opinion", "no equals sign"]);
    assert_eq!(err.code, 1, "{}", err.stderr);
    assert!(err.stderr.contains("EXPERT_ID=TEXT"), "{}", err.stderr);

    let got = supctl(&registry, &["meeting", "get", &id]).json();
    assert_eq!(got, minuted);
    let held = admin(&registry).get_meeting(GetMeetingRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(held.meeting.unwrap().minutes, "会议通报了年度监督情况。", "the bad --opinion sent nothing");
    let rows = supctl(&registry, &["meeting", "list", "--year", &year]).json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the refused thematic meeting was not stored");
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["invited"].as_str(), rows[0]["attended"].as_str()),
        (Some(id.as_str()), Some("2"), Some("1"))
    );

    let compliance = supctl(&registry, &["meeting", "compliance", "--year", &year]).json();
    assert_eq!((compliance["plenary_meetings"].as_i64(), compliance["thematic_meetings"].as_i64()), (Some(1), Some(0)));
    assert_eq!(compliance["active_experts"], 2);
    registry.stop().await;
}

async fn training_marks_experts_trained_and_activities_are_logged(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let a = appointed(&registry, "李明", ID_A).await;
    let b = appointed(&registry, "王芳", ID_B).await;
    let (day, date) = today();
    let trained = |id: &str| {
        let mut c = admin(&registry);
        let id = id.to_owned();
        async move { c.get_expert(GetExpertRequest { id }).await.unwrap().into_inner().expert.unwrap().trained }
    };
    assert!(!trained(&a).await && !trained(&b).await);

    let training = supctl(
        &registry,
        &["training", "create", "--title", "社会监督政策培训", "--date", &day, "--content", "江人社发〔2022〕1号解读"],
    )
    .json();
    let id = training["id"].as_str().unwrap().to_owned();
    assert_eq!(training["attendance"], serde_json::json!([]));
    let attended = supctl(&registry, &["training", "attendance", &id, "--expert", &format!("{a}=合格")]).json();
    assert_eq!(attended["attendance"], serde_json::json!([{ "expert_id": a, "assessment_result": "合格" }]));
    assert!(trained(&a).await, "attendance sets the trained flag");
    assert!(!trained(&b).await);
    let rows = supctl(&registry, &["training", "list", "--expert", &a]).json();
    assert_eq!((rows[0]["id"].as_str(), rows[0]["attended"].as_str()), (Some(id.as_str()), Some("1")));
    assert_eq!(supctl(&registry, &["training", "list", "--expert", &b]).json(), serde_json::json!([]));
    let rows = supctl(&registry, &["training", "list", "--year", &date.year.to_string()]).json();
    assert_eq!(rows.as_array().unwrap().len(), 1);

    // activity: staff enter one with how they received it; a county only for its own bureau.
    let activity = supctl(
        &registry,
        &[
            "activity",
            "record",
            "--expert",
            &a,
            "--date",
            &day,
            "--bureau",
            "440705",
            "--topic",
            "职业技能评价政策宣讲",
            "--audience",
            "培训机构负责人",
            "--received-by",
            "wechat",
        ],
    )
    .json();
    assert!(activity["id"].as_str().unwrap().starts_with("act_"), "{activity}");
    assert_eq!(
        (activity["expert_id"].as_str(), activity["topic"].as_str()),
        (Some(a.as_str()), Some("职业技能评价政策宣讲"))
    );
    assert!(activity["bureau"].as_str().unwrap().starts_with("440705"), "{activity}");
    let err = supctl(
        &registry,
        &["activity", "record", "--expert", &a, "--date", &day, "--bureau", "440705", "--topic", "未说明来源"],
    );
    assert_eq!(err.code, INVALID_ARGUMENT, "staff say how they received it: {}", err.stderr);
    let county = token(Role::CountyOperator, Some(Bureau::Xinhui));
    let err = supctl_with(
        &registry,
        &county,
        &[
            "activity",
            "record",
            "--expert",
            &b,
            "--date",
            &day,
            "--bureau",
            "440703",
            "--topic",
            "他区活动",
            "--received-by",
            "phone",
        ],
    );
    assert_eq!(err.code, PERMISSION_DENIED, "{}", err.stderr);
    let rows = supctl_with(&registry, &county, &["activity", "list"]).json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the county sees its own bureau's activity");
    assert_eq!(rows[0]["id"], activity["id"]);
    let rows = supctl(&registry, &["activity", "list", "--expert", &b]).json();
    assert_eq!(rows, serde_json::json!([]), "the refused activities were not stored");
    let held = admin(&registry)
        .list_publicity_activities(ListPublicityActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .activities;
    assert_eq!(held.len(), 1);
    registry.stop().await;
}
