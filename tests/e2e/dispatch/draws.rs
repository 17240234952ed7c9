//! The draw (ARCHITECTURE.md "The draw" steps 1-7; D8, D14, D15, D18) over gRPC, against a real
//! registry: the pool streamed and screened with every exclusion's reasons, the prepare with its
//! commitment, a witness who is not the operator, the execution's primaries and backups, the
//! record re-verified by `crates/draw`, no expert booked twice on a half-day by concurrent
//! draws, a pool too small, and idempotent retries.
//!
//! Dispatch's clock is Monday 2026-06-01 (tasks.rs); the experts are appointed from 2025-06-01,
//! so their two-year terms cover the sessions of Monday 2026-06-08.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use supervision_draw::{DrawRecord, RecordedRank, verify};
use supervision_proto::{
    common::{
        self, BureauCode, CivilServantStatus, ContactDetails, Date, ExpertCategory, ExpertKind, HalfDay,
        IdentityDocument, IdentityDocumentType, Locality, Organisation, RelationType, locality::Place,
    },
    dispatch::{
        Assignment, AssignmentRole, AssignmentStatus, Draw, DrawStatus, ExclusionReason, ExecuteDrawRequest,
        ExportDrawRequest, GetDrawRequest, ListAssignmentsRequest, ListDrawsRequest, PickOutcome, PrepareDrawRequest,
        SkipReason, TaskOrigin, VerifyDrawRequest, WitnessDrawRequest, dispatch_service_client::DispatchServiceClient,
    },
    registry::{
        AppointExpertRequest, CategoryHolding, ExpertProfile, RecordRelationRequest, RelationSource,
        SuspendExpertRequest, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, service_acting_for,
    spawn_dispatch_with_registry,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::tasks::{institution, on, reason, set_clock, task};

on_both_backends!(
    a_draw_is_prepared_witnessed_executed_and_verifies,
    concurrent_draws_never_share_an_expert_on_a_half_day,
    a_pool_too_small_is_refused_with_counts_per_reason,
    an_expert_booked_since_prepare_is_skipped_at_execute,
    experts_suspended_since_prepare_are_skipped_beyond_the_first_window,
    a_draw_stores_the_head_of_its_order_and_a_changed_head_fails_verification,
    each_draw_freezes_the_pool_as_the_registry_has_it_then,
    draws_from_one_pool_store_it_once_and_a_changed_pool_is_an_error_not_another_list,
);

const SCHOOL_CODE: &str = "91440703MA4W00001M";

/// A valid resident identity number (GB 11643 check character) for person `n`.
fn resident(n: u32) -> String {
    let body = format!("44070319800101{:03}", n % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// Appoints expert `n` (term from 2025-06-01) employed by `employer` (name, credit code) and
/// returns their id.
async fn appoint(registry: &RunningService, n: u32, employer: (&str, &str)) -> String {
    appoint_with(registry, n, employer, &[]).await
}

/// Expert `n` with an employer of their own and the specialty `codes`.
pub(crate) async fn specialist(registry: &RunningService, n: u32, codes: &[&str]) -> String {
    appoint_with(registry, n, (&format!("江门市第{n}职业学校"), ""), codes).await
}

async fn appoint_with(registry: &RunningService, n: u32, employer: (&str, &str), codes: &[&str]) -> String {
    let mut recruitment =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None));
    let application = format!("app_{}", uuid::Uuid::now_v7().simple());
    let profile = ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("专家{n}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: resident(n),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: "13812345678".into(), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(Organisation {
                name: employer.0.into(),
                credit_code: employer.1.into(),
                institution_id: String::new(),
            }),
            post: "教师".into(),
            since: Some(Date { year: 2015, month: 9, day: 1 }),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: Some(common::Evidence { description: "技师证".into(), documents: vec![] }),
            verified: true,
            ..Default::default()
        }],
        specialties: codes
            .iter()
            .map(|c| common::Specialty {
                code: Some(common::SpecialtyCode { code: (*c).into(), name: String::new() }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let request = AppointExpertRequest {
        request_id: application.clone(),
        application_id: application,
        profile: Some(profile),
        civil_servant_status: CivilServantStatus::None as i32,
        decision_date: Some(Date { year: 2025, month: 6, day: 1 }),
        term_start: None,
        replaces_expert_id: String::new(),
    };
    recruitment.appoint_expert(request).await.unwrap().into_inner().expert.unwrap().id
}

/// Experts `from..to`, each with an employer of their own (no conflict with the school).
pub(crate) async fn independents(registry: &RunningService, from: u32, to: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for n in from..to {
        ids.push(appoint(registry, n, (&format!("江门市第{n}职业学校"), "")).await);
    }
    ids
}

/// An expert employed by the supervised school: conflicted for it.
async fn employed_by_school(registry: &RunningService, n: u32) -> String {
    appoint(registry, n, ("蓬江职业培训学校", SCHOOL_CODE)).await
}

pub(crate) async fn school(registry: &RunningService) -> String {
    institution(registry, SCHOOL_CODE, BureauCode::Pengjiang, "蓬江职业培训学校").await
}

pub(crate) fn user(dispatch: &RunningService, subject: &str) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(dispatch.as_user(subject, Role::CountyOperator, Some(Bureau::Pengjiang)))
}

pub(crate) async fn create_task(
    operator: &mut DispatchServiceClient<AuthedChannel>,
    school: &str,
    reporter: Option<&str>,
    half_day: HalfDay,
) -> String {
    let mut request =
        task(&uuid::Uuid::new_v4().to_string(), BureauCode::Pengjiang, school, vec![on(2026, 6, 8, half_day)]);
    if let Some(reporter) = reporter {
        request.origin = TaskOrigin::Complaint as i32;
        request.reporter_expert_id = reporter.into();
    }
    operator.create_task(request).await.unwrap().into_inner().task.unwrap().id
}

pub(crate) async fn prepare(
    client: &mut DispatchServiceClient<AuthedChannel>,
    request_id: &str,
    task_id: &str,
) -> Draw {
    let request = PrepareDrawRequest { request_id: request_id.into(), task_id: task_id.into(), kind: 0 };
    client.prepare_draw(request).await.unwrap().into_inner().draw.unwrap()
}

pub(crate) async fn witness(
    client: &mut DispatchServiceClient<AuthedChannel>,
    request_id: &str,
    draw_id: &str,
    dice: &str,
) -> Draw {
    let request =
        WitnessDrawRequest { request_id: request_id.into(), draw_id: draw_id.into(), dice_digits: dice.into() };
    client.witness_draw(request).await.unwrap().into_inner().draw.unwrap()
}

pub(crate) async fn execute(
    client: &mut DispatchServiceClient<AuthedChannel>,
    request_id: &str,
    draw_id: &str,
) -> (Draw, Vec<Assignment>) {
    let request = ExecuteDrawRequest { request_id: request_id.into(), draw_id: draw_id.into() };
    let response = client.execute_draw(request).await.unwrap().into_inner();
    (response.draw.unwrap(), response.assignments)
}

pub(crate) fn first_reason_count(draw: &Draw, reason: ExclusionReason) -> i32 {
    draw.exclusion_counts.iter().find(|c| c.reason == reason as i32).map_or(0, |c| c.first_reason_count)
}

pub(crate) fn with_role(assignments: &[Assignment], role: AssignmentRole) -> Vec<String> {
    assignments.iter().filter(|a| a.role == role as i32).map(|a| a.expert_id.clone()).collect()
}

/// The exported record, as `crates/draw`'s verifier reads it.
async fn exported_record(client: &mut DispatchServiceClient<AuthedChannel>, draw_id: &str) -> DrawRecord {
    let export = client.export_draw(ExportDrawRequest { draw_id: draw_id.into() }).await.unwrap().into_inner();
    let record = export.record.unwrap();
    let list = export.candidate_list.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&record.content)), record.sha256);
    let json: serde_json::Value = serde_json::from_slice(&record.content).unwrap();
    let strings = |key: &str| -> Vec<String> {
        json[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let dice = json["dice_digits"].as_str().unwrap();
    DrawRecord {
        frozen_list: list.content,
        frozen_list_sha256: json["frozen_list_sha256"].as_str().unwrap().into(),
        candidate_count: json["candidate_count"].as_u64().unwrap() as usize,
        commitment: json["seed_commitment"].as_str().unwrap().into(),
        server_seed_hex: json["server_seed_hex"].as_str().unwrap().into(),
        dice_digits: (!dice.is_empty()).then(|| dice.to_owned()),
        order: json["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| RecordedRank {
                id: r["expert_id"].as_str().unwrap().into(),
                ticket: Some(r["ticket"].as_str().unwrap().into()),
            })
            .collect(),
        primaries: strings("primaries"),
        backups: strings("backups"),
        skipped: strings("skipped"),
    }
}

async fn a_draw_is_prepared_witnessed_executed_and_verifies(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let conflicted = [employed_by_school(&registry, 1).await, employed_by_school(&registry, 2).await];
    let others = independents(&registry, 3, 11).await;
    let reporter = others[0].clone();
    let eligible: HashSet<String> = others[1..].iter().cloned().collect();

    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = create_task(&mut operator, &school, Some(&reporter), HalfDay::Am).await;

    // Prepare: the list frozen and committed, the seed kept back; every exclusion counted.
    let prepared = prepare(&mut operator, "prep-1", &task_id).await;
    assert!(prepared.id.starts_with("drw_"), "{}", prepared.id);
    assert_eq!(prepared.status, DrawStatus::Prepared as i32);
    assert_eq!(prepared.candidate_count, 7);
    assert_eq!((prepared.team_size, prepared.backup_count), (2, 2));
    assert_eq!(prepared.algorithm, "draw-v1");
    assert_eq!(prepared.seed_commitment.len(), 64);
    assert!(prepared.server_seed.is_empty() && prepared.seed_string.is_empty(), "the seed is secret");
    assert_eq!(first_reason_count(&prepared, ExclusionReason::Conflicted), 2);
    assert_eq!(first_reason_count(&prepared, ExclusionReason::Reporter), 1);
    let mut frozen: Vec<&String> = eligible.iter().collect();
    frozen.sort();
    let blob: String = frozen.iter().map(|id| format!("{id}\n")).collect();
    assert_eq!(prepared.candidate_list_sha256, hex::encode(Sha256::digest(blob.as_bytes())));
    // A retry answers the same; a second prepare of the task is refused.
    assert_eq!(prepare(&mut operator, "prep-1", &task_id).await, prepared);
    let again = PrepareDrawRequest { request_id: "prep-2".into(), task_id: task_id.clone(), kind: 0 };
    let err = operator.prepare_draw(again).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DRAW_EXISTS"));

    // Not executed before a witness; the operator cannot witness their own draw.
    let early = ExecuteDrawRequest { request_id: "exec-early".into(), draw_id: prepared.id.clone() };
    let err = operator.execute_draw(early).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DRAW_NOT_WITNESSED"));
    let own =
        WitnessDrawRequest { request_id: "wit-own".into(), draw_id: prepared.id.clone(), dice_digits: String::new() };
    let err = operator.witness_draw(own).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "WITNESS_IS_OPERATOR"));
    let short_dice =
        WitnessDrawRequest { request_id: "wit-dice".into(), draw_id: prepared.id.clone(), dice_digits: "123".into() };
    assert_eq!(colleague.witness_draw(short_dice).await.unwrap_err().code(), Code::InvalidArgument);

    let dice = "31415926535897932384";
    let witnessed = witness(&mut colleague, "wit-1", &prepared.id, dice).await;
    assert_eq!(witnessed.status, DrawStatus::Witnessed as i32);
    assert_eq!(witnessed.witness.as_ref().unwrap().subject, "operator-b");
    assert_eq!(witnessed.dice_digits, dice);
    assert!(witnessed.server_seed.is_empty());
    assert_eq!(witness(&mut colleague, "wit-1", &prepared.id, dice).await, witnessed, "a retry answers the same");

    // Execute: the seed opens the commitment; N primaries and B backups, none excluded.
    let (executed, assignments) = execute(&mut operator, "exec-1", &prepared.id).await;
    assert_eq!(executed.status, DrawStatus::Executed as i32);
    let seed = hex::decode(&executed.server_seed).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&seed)), executed.seed_commitment);
    assert_eq!(executed.seed_string, format!("{}:{dice}", executed.server_seed));
    let primaries = with_role(&assignments, AssignmentRole::Primary);
    let backups = with_role(&assignments, AssignmentRole::Backup);
    assert_eq!((primaries.len(), backups.len()), (2, 2));
    for a in &assignments {
        assert!(eligible.contains(&a.expert_id), "{} was excluded", a.expert_id);
        assert!(!conflicted.contains(&a.expert_id) && a.expert_id != reporter);
        let status = if a.role == AssignmentRole::Primary as i32 {
            AssignmentStatus::Notified
        } else {
            AssignmentStatus::Reserved
        };
        assert_eq!(a.status, status as i32);
    }
    let taken: Vec<i32> =
        executed.picks.iter().filter(|p| p.outcome != PickOutcome::Skipped as i32).map(|p| p.position).collect();
    assert_eq!(taken, [1, 2, 3, 4], "nobody busy, no shared employer: the top four");
    assert!(executed.picks.iter().all(|p| p.ticket.starts_with("0.") && p.ticket.len() >= 66));
    // A retry answers the same and books nothing more.
    let (replayed, replayed_assignments) = execute(&mut operator, "exec-1", &prepared.id).await;
    assert_eq!((replayed, replayed_assignments), (executed.clone(), assignments.clone()));
    let roster = operator
        .list_assignments(ListAssignmentsRequest { task_id: task_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(roster, assignments);

    // The record reads back unchanged and verifies, by the service and by crates/draw.
    let read = operator.get_draw(GetDrawRequest { id: prepared.id.clone() }).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(read, executed);
    let listed = operator
        .list_draws(ListDrawsRequest { task_id: task_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert_eq!(listed, std::slice::from_ref(&executed));
    let record = exported_record(&mut operator, &prepared.id).await;
    assert_eq!(record.order.len(), 7);
    assert_eq!(record.primaries, primaries);
    let verification = verify(&record);
    assert!(verification.is_consistent(), "{:?}", verification.mismatches);
    let verdict = operator.verify_draw(VerifyDrawRequest { draw_id: prepared.id.clone() }).await.unwrap().into_inner();
    assert!(verdict.verified && verdict.order_matches && verdict.commitment_matches, "{verdict:?}");

    // D18: the record names no one.
    let everything = format!("{executed:?}{record:?}");
    assert!(!everything.contains("专家") && !everything.contains(&resident(3)));
    registry.stop().await;
    dispatch.stop().await;
}

async fn concurrent_draws_never_share_an_expert_on_a_half_day(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 7).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let first = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let second = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let mut draws = Vec::new();
    for (i, task_id) in [&first, &second].into_iter().enumerate() {
        let draw = prepare(&mut operator, &format!("prep-{i}"), task_id).await;
        assert_eq!(draw.candidate_count, 6);
        witness(&mut colleague, &format!("wit-{i}"), &draw.id, "").await;
        draws.push(draw.id);
    }

    let mut a = user(&dispatch, "operator-a");
    let mut b = user(&dispatch, "operator-a");
    let (one, two) = tokio::join!(execute(&mut a, "exec-0", &draws[0]), execute(&mut b, "exec-1", &draws[1]));
    let one = with_role(&one.1, AssignmentRole::Primary);
    let two = with_role(&two.1, AssignmentRole::Primary);
    assert_eq!((one.len(), two.len()), (2, 2));
    assert!(one.iter().all(|e| !two.contains(e)), "{one:?} and {two:?} share an expert on 2026-06-08 AM");

    // A third task on that half-day sees the four booked experts excluded.
    let third = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let err = operator
        .prepare_draw(PrepareDrawRequest { request_id: "prep-3".into(), task_id: third, kind: 0 })
        .await
        .unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "POOL_TOO_SMALL"));
    let info = err.get_error_details().error_info().unwrap().clone();
    assert_eq!(info.metadata["EXCLUSION_REASON_ALREADY_BOOKED"], "4");
    assert_eq!(info.metadata["eligible"], "2");
    // The afternoon is free again.
    let afternoon = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    assert_eq!(prepare(&mut operator, "prep-4", &afternoon).await.candidate_count, 6);
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_pool_too_small_is_refused_with_counts_per_reason(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    employed_by_school(&registry, 1).await;
    let others = independents(&registry, 2, 6).await;
    let mut operator = user(&dispatch, "operator-a");
    let task_id = create_task(&mut operator, &school, Some(&others[0]), HalfDay::Pm).await;
    let request = PrepareDrawRequest { request_id: "prep-1".into(), task_id: task_id.clone(), kind: 0 };
    let err = operator.prepare_draw(request.clone()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "POOL_TOO_SMALL"));
    let info = err.get_error_details().error_info().unwrap().clone();
    assert_eq!(info.metadata["eligible"], "3");
    assert_eq!(info.metadata["needed"], "4");
    assert_eq!(info.metadata["EXCLUSION_REASON_CONFLICTED"], "1");
    assert_eq!(info.metadata["EXCLUSION_REASON_REPORTER"], "1");
    assert_eq!(info.metadata["EXCLUSION_REASON_ALREADY_BOOKED"], "0");
    // Nothing was recorded: no draw, and the same request is refused again, not replayed.
    let draws = operator
        .list_draws(ListDrawsRequest { task_id: task_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert!(draws.is_empty());
    assert_eq!(operator.prepare_draw(request).await.unwrap_err().code(), Code::FailedPrecondition);
    registry.stop().await;
    dispatch.stop().await;
}

async fn an_expert_booked_since_prepare_is_skipped_at_execute(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let first = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let second = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let a = prepare(&mut operator, "prep-a", &first).await;
    let b = prepare(&mut operator, "prep-b", &second).await;
    assert_eq!((a.candidate_count, b.candidate_count), (4, 4));
    witness(&mut colleague, "wit-a", &a.id, "").await;
    witness(&mut colleague, "wit-b", &b.id, "").await;
    let (_, booked) = execute(&mut operator, "exec-a", &a.id).await;
    let booked = with_role(&booked, AssignmentRole::Primary);

    // The second walk finds the first draw's primaries busy: skipped with the reason, and the
    // two left become primaries; no backup is left to reserve.
    let (executed, assignments) = execute(&mut operator, "exec-b", &b.id).await;
    let primaries = with_role(&assignments, AssignmentRole::Primary);
    assert_eq!(primaries.len(), 2);
    assert!(with_role(&assignments, AssignmentRole::Backup).is_empty());
    assert!(primaries.iter().all(|e| !booked.contains(e) && experts.contains(e)));
    let mut skipped: Vec<String> = executed
        .picks
        .iter()
        .filter(|p| p.outcome == PickOutcome::Skipped as i32)
        .map(|p| {
            assert_eq!(p.skip_reason, SkipReason::NoLongerFree as i32);
            p.expert_id.clone()
        })
        .collect();
    skipped.sort();
    let mut want = booked.clone();
    want.sort();
    assert_eq!(skipped, want);
    let verification = verify(&exported_record(&mut operator, &b.id).await);
    assert!(verification.is_consistent(), "{:?}", verification.mismatches);
    registry.stop().await;
    dispatch.stop().await;
}

/// ExecuteDraw asks the registry only about the head of the order, a window at a time (the first
/// 16 candidates for 2 + 2, then 32, ...): with 36 of 40 candidates suspended after prepare, the
/// walk skips every suspended one it reaches (the first-ranked among them) and goes past the
/// first window (unless the four still active all rank in the top 16, about 2% of orders); the
/// outcome is the walk over the whole pool, recomputed here from the revealed order.
async fn experts_suspended_since_prepare_are_skipped_beyond_the_first_window(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 41).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let prepared = prepare(&mut operator, "prep-1", &task_id).await;
    assert_eq!(prepared.candidate_count, 40);
    witness(&mut colleague, "wit-1", &prepared.id, "").await;
    let mut city = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let active: HashSet<String> = experts[..4].iter().cloned().collect();
    for expert in &experts[4..] {
        let suspend = SuspendExpertRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            expert_id: expert.clone(),
            reason: "事件调查中".into(),
            ..Default::default()
        };
        city.suspend_expert(suspend).await.unwrap();
    }

    let (executed, assignments) = execute(&mut operator, "exec-1", &prepared.id).await;
    let record = exported_record(&mut operator, &prepared.id).await;
    assert_eq!(record.order.len(), 40);
    let order: Vec<&str> = record.order.iter().map(|r| r.id.as_str()).collect();
    // The whole pool's walk: the active ones in rank order, two primaries then two backups; every
    // suspended candidate before the last of them skipped as no longer active.
    let ranked_active: Vec<String> =
        order.iter().filter(|id| active.contains(**id)).map(|id| (*id).to_owned()).collect();
    let last = order.iter().rposition(|id| active.contains(*id)).unwrap();
    assert_eq!(with_role(&assignments, AssignmentRole::Primary), ranked_active[..2]);
    assert_eq!(with_role(&assignments, AssignmentRole::Backup), ranked_active[2..]);
    let skipped: Vec<&str> = executed
        .picks
        .iter()
        .filter(|p| p.outcome == PickOutcome::Skipped as i32)
        .map(|p| {
            assert_eq!(p.skip_reason, SkipReason::NoLongerActive as i32, "{p:?}");
            p.expert_id.as_str()
        })
        .collect();
    let want: Vec<&str> = order[..last].iter().filter(|id| !active.contains(**id)).copied().collect();
    assert_eq!(skipped, want);
    if !active.contains(order[0]) {
        assert_eq!(skipped[0], order[0], "the first-ranked, suspended since prepare, is skipped");
    }
    let verification = verify(&record);
    assert!(verification.is_consistent(), "{:?}", verification.mismatches);
    // A retry answers the same.
    assert_eq!(execute(&mut operator, "exec-1", &prepared.id).await, (executed, assignments));
    registry.stop().await;
    dispatch.stop().await;
}

/// An executed draw stores its order only through the place its walk reached (the rest follows
/// from the frozen list and the seed); the export still carries the whole order, and a stored
/// head that no longer matches the recomputation is named by VerifyDraw.
async fn a_draw_stores_the_head_of_its_order_and_a_changed_head_fails_verification(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 3, 15).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let prepared = prepare(&mut operator, "prep-head", &task_id).await;
    assert_eq!(prepared.candidate_count, 12);
    witness(&mut colleague, "wit-head", &prepared.id, "27182818284590452353").await;
    let (executed, _) = execute(&mut operator, "exec-head", &prepared.id).await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(dispatch.database_url()).await.unwrap();
    let (stored, next): (String, i64) = sqlx::query_as("SELECT draw_order, next_position FROM draws WHERE id = $1")
        .bind(&prepared.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next, 4, "two primaries and two backups, nobody skipped");
    assert_eq!(stored.lines().count(), 4, "only the walked head is stored: {stored}");
    let record = exported_record(&mut operator, &prepared.id).await;
    assert_eq!(record.order.len(), 12, "the export carries the whole order");
    for (line, rank) in stored.lines().zip(&record.order) {
        assert_eq!(line, format!("{} {}", rank.id, rank.ticket.as_deref().unwrap()));
    }
    assert!(verify(&record).is_consistent());
    let verdict = operator.verify_draw(VerifyDrawRequest { draw_id: prepared.id.clone() }).await.unwrap().into_inner();
    assert!(verdict.verified, "{verdict:?}");

    // The first two stored places swapped: the recomputed order disagrees at both.
    let mut lines: Vec<&str> = stored.lines().collect();
    lines.swap(0, 1);
    let changed: String = lines.iter().map(|l| format!("{l}\n")).collect();
    sqlx::query("UPDATE draws SET draw_order = $1 WHERE id = $2")
        .bind(changed)
        .bind(&prepared.id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let verdict = operator.verify_draw(VerifyDrawRequest { draw_id: prepared.id.clone() }).await.unwrap().into_inner();
    assert!(!verdict.verified && !verdict.order_matches, "{verdict:?}");
    assert!(verdict.list_hash_matches && verdict.commitment_matches, "{verdict:?}");
    let named = verdict.problems.iter().filter(|p| p.contains("order position")).count();
    assert!(named >= 2, "both swapped places are named: {:?}", verdict.problems);
    assert_eq!(executed.candidate_count, 12);
    registry.stop().await;
    dispatch.stop().await;
}

/// Dispatch keeps a copy of the registry's pool and brings it up to date at every draw
/// (`pool_copy`): a draw prepared after experts were suspended, appointed, or related to the
/// institution freezes the pool as the registry has it then, exactly as a whole read would.
async fn each_draw_freezes_the_pool_as_the_registry_has_it_then(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 8).await;
    let mut operator = user(&dispatch, "operator-a");
    let first = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let before = prepare(&mut operator, "prep-1", &first).await;
    assert_eq!(before.candidate_count, 7);

    let mut city = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let suspend = SuspendExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        expert_id: experts[0].clone(),
        reason: "事件调查中".into(),
        ..Default::default()
    };
    city.suspend_expert(suspend).await.unwrap();
    let relation = RecordRelationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        expert_id: experts[1].clone(),
        r#type: RelationType::PaidService as i32,
        institution_id: school.clone(),
        source: RelationSource::Bureau as i32,
        ..Default::default()
    };
    city.record_relation(relation).await.unwrap();
    let added = independents(&registry, 8, 10).await;
    employed_by_school(&registry, 10).await;

    let second = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let after = prepare(&mut operator, "prep-2", &second).await;
    assert_eq!(first_reason_count(&after, ExclusionReason::NotActive), 1);
    assert_eq!(first_reason_count(&after, ExclusionReason::Conflicted), 2);
    assert_eq!(after.candidate_count, 7 - 2 + 2, "two excluded, two appointed since");
    witness(&mut user(&dispatch, "operator-b"), "wit-2", &after.id, "").await;
    execute(&mut operator, "exec-2", &after.id).await;
    let export = operator.export_draw(ExportDrawRequest { draw_id: after.id.clone() }).await.unwrap().into_inner();
    let list = String::from_utf8(export.candidate_list.unwrap().content).unwrap();
    let frozen: HashSet<&str> = list.lines().collect();
    let want: HashSet<&str> = experts[2..].iter().chain(&added).map(String::as_str).collect();
    assert_eq!(frozen, want);

    registry.stop().await;
    dispatch.stop().await;
}

/// A draw's frozen list is its pool without its exclusions, and the pool is stored once for
/// every draw frozen from it (`candidate_pools`, migration 0014): two draws with different
/// exclusions share one stored pool, each export rebuilds its own list and verifies, and a
/// stored pool changed afterwards fails the export instead of answering another list.
async fn draws_from_one_pool_store_it_once_and_a_changed_pool_is_an_error_not_another_list(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 13).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let with_reporter = create_task(&mut operator, &school, Some(&experts[0]), HalfDay::Am).await;
    let without = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let mut draws = Vec::new();
    for (i, task_id) in [&with_reporter, &without].into_iter().enumerate() {
        let prepared = prepare(&mut operator, &format!("prep-{i}"), task_id).await;
        witness(&mut colleague, &format!("wit-{i}"), &prepared.id, "").await;
        let (executed, _) = execute(&mut operator, &format!("exec-{i}"), &prepared.id).await;
        // D14: nobody here attended training; each pick is flagged (from the draw's untrained
        // list at execution; the list itself is read back only by the export).
        assert!(!executed.picks.is_empty() && executed.picks.iter().all(|p| !p.trained), "{:?}", executed.picks);
        draws.push(prepared);
    }
    // The reporter is left out of the first; the first's two primaries (cooling period at the
    // same institution) out of the second.
    assert_eq!((draws[0].candidate_count, draws[1].candidate_count), (11, 10));

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(dispatch.database_url()).await.unwrap();
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT sha256, list FROM candidate_pools").fetch_all(&pool).await.unwrap();
    assert_eq!(stored.len(), 1, "one pool stored for both draws");
    let (sha256, list) = &stored[0];
    assert_eq!(list.lines().count(), 12);
    let own: Vec<(String, String)> =
        sqlx::query_as("SELECT frozen_list, pool_list_sha256 FROM draws ORDER BY id").fetch_all(&pool).await.unwrap();
    assert!(own.iter().all(|(list, pool)| list.is_empty() && pool == sha256), "{own:?}");
    for (prepared, left_out) in draws.iter().zip([Some(&experts[0]), None]) {
        let record = exported_record(&mut operator, &prepared.id).await;
        assert_eq!(hex::encode(Sha256::digest(&record.frozen_list)), prepared.candidate_list_sha256);
        let frozen = String::from_utf8(record.frozen_list.clone()).unwrap();
        assert!(left_out.is_none_or(|out| !frozen.lines().any(|id| id == out)), "{left_out:?} is left out");
        assert!(verify(&record).is_consistent(), "{:?}", verify(&record).mismatches);
        let export = operator.export_draw(ExportDrawRequest { draw_id: prepared.id.clone() }).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&export.into_inner().record.unwrap().content).unwrap();
        let untrained: Vec<&str> = json["untrained"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(untrained, frozen.lines().collect::<Vec<_>>(), "every candidate is flagged untrained");
    }

    // Picks carry their own untrained flag, so reads leave the untrained list alone. A walk
    // recorded before they did (the flags stripped here) is flagged from the list on reading:
    // here a list naming only the first pick.
    let read = |operator: &mut DispatchServiceClient<AuthedChannel>| {
        let request = GetDrawRequest { id: draws[0].id.clone() };
        let mut operator = operator.clone();
        async move { operator.get_draw(request).await.unwrap().into_inner().draw.unwrap() }
    };
    let (walk,): (String,) =
        sqlx::query_as("SELECT walk FROM draws WHERE id = $1").bind(&draws[0].id).fetch_one(&pool).await.unwrap();
    assert!(walk.contains(r#","untrained":true"#), "{walk}");
    let recorded = read(&mut operator).await;
    assert!(recorded.picks.len() > 1, "{:?}", recorded.picks);
    // As a draw recorded before either: its own untrained list, none shared.
    sqlx::query(
        r#"UPDATE draws SET walk = REPLACE(walk, ',"untrained":true', ''), untrained = $1, untrained_sha256 = '' WHERE id = $2"#,
    )
        .bind(serde_json::json!([recorded.picks[0].expert_id]).to_string())
        .bind(&draws[0].id)
        .execute(&pool)
        .await
        .unwrap();
    let legacy = read(&mut operator).await;
    let flagged: Vec<bool> = legacy.picks.iter().map(|p| !p.trained).collect();
    assert_eq!(legacy.picks.len(), recorded.picks.len());
    assert!(flagged[0] && flagged[1..].iter().all(|f| !f), "only the listed pick is untrained: {flagged:?}");

    // Each distinct untrained list is stored once and named by its SHA-256 (the two draws' lists
    // differ: the second leaves out the first's primaries); a stored list that no longer hashes
    // to its name is an error, not another list.
    let shared: Vec<(String, String)> =
        sqlx::query_as("SELECT sha256, list FROM untrained_lists ORDER BY sha256").fetch_all(&pool).await.unwrap();
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert!(shared.iter().all(|(sha256, list)| hex::encode(Sha256::digest(list.as_bytes())) == *sha256));
    let (own, named): (String, String) = sqlx::query_as("SELECT untrained, untrained_sha256 FROM draws WHERE id = $1")
        .bind(&draws[1].id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(own.is_empty() && shared.iter().any(|(sha256, _)| *sha256 == named), "{own:?} {named:?}");
    let kept: String = shared.iter().find(|(sha256, _)| *sha256 == named).map(|(_, list)| list.clone()).unwrap();
    let set_list = |list: String| {
        sqlx::query("UPDATE untrained_lists SET list = $1 WHERE sha256 = $2").bind(list).bind(named.clone())
    };
    set_list("[]".to_owned()).execute(&pool).await.unwrap();
    let err = operator.export_draw(ExportDrawRequest { draw_id: draws[1].id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    set_list(kept).execute(&pool).await.unwrap();
    operator.export_draw(ExportDrawRequest { draw_id: draws[1].id.clone() }).await.unwrap();

    // One expert's line dropped from the stored pool: no list hashes to the commitment.
    let changed: String = list.lines().skip(1).map(|l| format!("{l}\n")).collect();
    sqlx::query("UPDATE candidate_pools SET list = $1").bind(changed).execute(&pool).await.unwrap();
    pool.close().await;
    let err = operator.export_draw(ExportDrawRequest { draw_id: draws[1].id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    registry.stop().await;
    dispatch.stop().await;
}
