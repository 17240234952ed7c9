//! The draw pool dispatch streams (ARCHITECTURE.md "The draw" step 1; D14, D18): every appointed
//! expert whose latest term has not ended before the first session date, with status, term,
//! trained flag, specialty codes, employer key, represented unit and conflict reasons for the
//! institution, in id order, in batches, ending with the count; opaque ids only. Sync reads
//! (issue 12): the changes since a version, which brought to a copy give the whole pool.

use chrono::Datelike;
use supervision_proto::{
    common::{CivilServantStatus, Date, Organisation, RelationType, Specialty, SpecialtyCode},
    registry::{
        ConflictPath, CreateExpertRequest, DrawPoolExpert, ExpertStatus, ExpertStatusChange, ListAuditEntriesRequest,
        StreamDrawPoolRequest, StreamDrawPoolResponse, SuspendExpertRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Role, RunningService, on_both_backends, service_acting_for, spawn_registry};
use tonic::Code;

use crate::{
    appointments::{admin, appoint, appoint_request, date, id, profile, recruitment, today, violated_fields},
    relations::{PARENT_CODE, by_bureau, institution, legal_entity, record, sub_unit},
};

on_both_backends!(
    the_pool_lists_only_appointed_experts_with_their_conflict_reasons,
    a_pool_of_hundreds_streams_whole,
    a_pool_read_for_some_experts_answers_those_of_the_pool_only,
    sync_reads_bring_a_copy_to_the_whole_pool_from_any_earlier_version,
);

/// PostgreSQL only: on SQLite a sync read (which writes its audit entry first) waits for any
/// writer to finish, so no change can commit after a read's version and before the read.
mod postgres_writers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_committed_after_a_sync_read_began_is_in_the_next_one() {
        super::a_change_committed_after_a_sync_read_began_is_in_the_next_one().await;
    }
}

/// A valid resident identity number (GB 11643 check character) for person `n`.
fn resident(n: u32) -> String {
    let body = format!("44070319800101{:03}", n % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

fn days_from_today(n: i64) -> Date {
    let t = today();
    let d = chrono::NaiveDate::from_ymd_opt(t.year, t.month as u32, t.day as u32).unwrap() + chrono::Duration::days(n);
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

/// Suspends `expert` by the city bureau, from `from` (a later date) or at once; the recorded change.
async fn suspend(registry: &RunningService, expert: &str, from: Option<Date>) -> ExpertStatusChange {
    let request = SuspendExpertRequest {
        request_id: id(),
        expert_id: expert.to_owned(),
        reason: "调查期间暂停".into(),
        effective_date: from,
        ..Default::default()
    };
    admin(registry).suspend_expert(request).await.unwrap().into_inner().change.unwrap()
}

fn dispatch(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityOperator, None))
}

fn pool_request(institution: &str, dates: Vec<Date>) -> StreamDrawPoolRequest {
    StreamDrawPoolRequest {
        institution_id: institution.into(),
        session_dates: dates,
        task_id: format!("tsk_{}", id()),
        expert_ids: vec![],
        ..Default::default()
    }
}

/// Every message of the stream.
async fn stream(
    c: &mut RegistryServiceClient<AuthedChannel>,
    req: StreamDrawPoolRequest,
) -> Result<Vec<StreamDrawPoolResponse>, tonic::Status> {
    let mut s = c.stream_draw_pool(req).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(m) = s.message().await? {
        messages.push(m);
    }
    Ok(messages)
}

/// The experts of a whole stream, checking its shape: batches of at most 1,000 in id order, then
/// one message with the end and the right count.
fn experts_of(messages: &[StreamDrawPoolResponse]) -> Vec<DrawPoolExpert> {
    let (last, batches) = messages.split_last().expect("at least the end");
    assert!(last.experts.is_empty(), "the last message carries only the end");
    let end = last.end.as_ref().expect("the stream ends with the count");
    assert!(end.as_of.is_some());
    let experts: Vec<DrawPoolExpert> = batches
        .iter()
        .flat_map(|m| {
            assert!(m.end.is_none() && !m.experts.is_empty() && m.experts.len() <= 1000);
            m.experts.clone()
        })
        .collect();
    assert_eq!(end.expert_count as usize, experts.len());
    assert!(experts.windows(2).all(|w| w[0].expert_id < w[1].expert_id), "in id order");
    experts
}

async fn the_pool_lists_only_appointed_experts_with_their_conflict_reasons(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let parent = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let studio = institution(&registry, sub_unit(&parent, "江门市技师学院烹饪工作室")).await;
    let decided = Some(days_from_today(-30));

    // Employed by the parent, with specialties (not in code order: the pool keeps the expert's order).
    let mut req = appoint_request("李明", &resident(1), decided);
    let p = req.profile.as_mut().unwrap();
    p.employer.as_mut().unwrap().organisation = Some(Organisation {
        name: "江门市技师学院".into(),
        credit_code: PARENT_CODE.into(),
        institution_id: String::new(),
    });
    p.specialties = ["4-07-05", "4-03-02-01"]
        .iter()
        .map(|c| Specialty {
            code: Some(SpecialtyCode { code: (*c).into(), name: String::new() }),
            ..Default::default()
        })
        .collect();
    let employed = appoint(&registry, req).await.expert.unwrap().id;
    // A paid service for the studio.
    let related = appoint(&registry, appoint_request("王芳", &resident(2), decided)).await.expert.unwrap().id;
    let relation = record(&registry, by_bureau(&related, RelationType::PaidService, &studio)).await;
    // Nothing to do with the institution.
    let plain = appoint(&registry, appoint_request("张伟", &resident(3), decided)).await.expert.unwrap().id;
    // Suspended from a later date: in the pool, with the change scheduled.
    let suspended = appoint(&registry, appoint_request("赵敏", &resident(4), decided)).await.expert.unwrap().id;
    let suspension = suspend(&registry, &suspended, Some(days_from_today(20))).await;
    // A term that ended before the sessions, and an expert never appointed: not in the pool.
    let lapsed = appoint(&registry, appoint_request("钱进", &resident(5), date(2024, 6, 1))).await.expert.unwrap().id;
    let never = admin(&registry)
        .create_expert(CreateExpertRequest {
            request_id: id(),
            profile: Some(profile("孙丽", &resident(6))),
            civil_servant_status: CivilServantStatus::None as i32,
            civil_servant_since: None,
            existing_appointment: None,
        })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap()
        .id;

    let sessions = vec![days_from_today(10), days_from_today(11)];
    let messages = stream(&mut dispatch(&registry), pool_request(&studio, sessions.clone())).await.unwrap();
    let experts = experts_of(&messages);
    let mut want = vec![employed.clone(), related.clone(), plain.clone(), suspended.clone()];
    want.sort();
    assert_eq!(experts.iter().map(|e| e.expert_id.clone()).collect::<Vec<_>>(), want);
    assert!(!experts.iter().any(|e| e.expert_id == lapsed || e.expert_id == never));

    let of = |id: &str| experts.iter().find(|e| e.expert_id == id).unwrap().clone();
    let e = of(&employed);
    assert_eq!(e.status, ExpertStatus::Active as i32);
    assert_eq!(e.term.unwrap().start, decided);
    assert!(!e.trained);
    assert_eq!(e.employer_key, PARENT_CODE);
    assert_eq!(e.specialties.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(), ["4-07-05", "4-03-02-01"]);
    assert!(e.specialties.iter().all(|s| s.name.is_empty()), "codes only");
    assert_eq!(
        e.conflicts.iter().map(|r| (r.relation_type, r.path)).collect::<Vec<_>>(),
        [(RelationType::CurrentEmployment as i32, ConflictPath::Employer as i32)]
    );
    let r = of(&related);
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].relation_id, relation.id);
    assert_eq!(r.conflicts[0].path, ConflictPath::Direct as i32);
    assert!(of(&plain).conflicts.is_empty());
    assert_eq!(of(&plain).employer_key, "91350100M000100Y43");
    let s = of(&suspended);
    assert_eq!(s.status, ExpertStatus::Suspended as i32);
    assert_eq!(s.scheduled_change.unwrap().id, suspension.id);

    // D18: ids and codes only, never a name or an identity number.
    let everything = format!("{messages:?}");
    for text in ["李明", "王芳", "张伟", "赵敏", "江门市技师学院"] {
        assert!(!everything.contains(text), "{text} in the stream");
    }
    for n in 1..=4 {
        assert!(!everything.contains(&resident(n)), "an ID number in the stream");
    }

    // The read is audited with the task id.
    let entries = admin(&registry)
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "institution".into(),
            entity_id: studio.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().any(|e| e.action == "read_draw_pool" && e.after_json.contains("tsk_")), "{entries:?}");

    // Operators get the pool only through PrepareDraw (docs/rpc-roles.md); bad requests are named.
    let mut operator = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    let err = stream(&mut operator, pool_request(&studio, sessions)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let bad = StreamDrawPoolRequest {
        institution_id: studio.clone(),
        session_dates: vec![],
        task_id: String::new(),
        expert_ids: vec![],
        ..Default::default()
    };
    let err = stream(&mut dispatch(&registry), bad).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["session_dates", "task_id"]);
    let unknown = pool_request("ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f", vec![days_from_today(10)]);
    assert_eq!(stream(&mut dispatch(&registry), unknown).await.unwrap_err().code(), Code::NotFound);
    registry.stop().await;
}

async fn a_pool_of_hundreds_streams_whole(backend: Backend) {
    const EXPERTS: u32 = 300;
    let registry = spawn_registry(backend).await;
    let school = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let decided = Some(days_from_today(-30));
    let mut appointed = Vec::new();
    for chunk in (0..EXPERTS).collect::<Vec<_>>().chunks(10) {
        let mut set = tokio::task::JoinSet::new();
        for n in chunk {
            let mut c = recruitment(&registry);
            let req = appoint_request(&format!("专家{n}"), &resident(*n), decided);
            set.spawn(async move { c.appoint_expert(req).await.unwrap().into_inner().expert.unwrap().id });
        }
        while let Some(id) = set.join_next().await {
            appointed.push(id.unwrap());
        }
    }
    // Every tenth has a relation with the institution.
    appointed.sort();
    for expert in appointed.iter().step_by(10) {
        let mut req = by_bureau(expert, RelationType::Colleague, &school);
        req.counterpart_name = "陈老师".into();
        record(&registry, req).await;
    }

    let messages = stream(&mut dispatch(&registry), pool_request(&school, vec![days_from_today(5)])).await.unwrap();
    let experts = experts_of(&messages);
    assert_eq!(experts.iter().map(|e| e.expert_id.clone()).collect::<Vec<_>>(), appointed);
    assert_eq!(experts.iter().filter(|e| !e.conflicts.is_empty()).count(), (EXPERTS as usize).div_ceil(10));
    registry.stop().await;
}

/// StreamDrawPoolRequest.expert_ids (ExecuteDraw's re-check of the order's head): only the experts
/// named that the whole pool holds, each exactly as the whole pool has it (facts, conflict
/// reasons, scheduled change); ids the pool does not hold are absent; at most 1,000 ids.
async fn a_pool_read_for_some_experts_answers_those_of_the_pool_only(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let parent = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let studio = institution(&registry, sub_unit(&parent, "江门市技师学院烹饪工作室")).await;
    let decided = Some(days_from_today(-30));
    let mut req = appoint_request("李明", &resident(11), decided);
    let p = req.profile.as_mut().unwrap();
    p.employer.as_mut().unwrap().organisation = Some(Organisation {
        name: "江门市技师学院".into(),
        credit_code: PARENT_CODE.into(),
        institution_id: String::new(),
    });
    p.specialties = ["4-07-05", "4-03-02-01"]
        .iter()
        .map(|c| Specialty {
            code: Some(SpecialtyCode { code: (*c).into(), name: String::new() }),
            ..Default::default()
        })
        .collect();
    let employed = appoint(&registry, req).await.expert.unwrap().id;
    let related = appoint(&registry, appoint_request("王芳", &resident(12), decided)).await.expert.unwrap().id;
    record(&registry, by_bureau(&related, RelationType::PaidService, &studio)).await;
    let suspended = appoint(&registry, appoint_request("赵敏", &resident(13), decided)).await.expert.unwrap().id;
    suspend(&registry, &suspended, Some(days_from_today(20))).await;
    let left_out = appoint(&registry, appoint_request("张伟", &resident(14), decided)).await.expert.unwrap().id;
    let lapsed = appoint(&registry, appoint_request("钱进", &resident(15), date(2024, 6, 1))).await.expert.unwrap().id;
    let never = admin(&registry)
        .create_expert(CreateExpertRequest {
            request_id: id(),
            profile: Some(profile("孙丽", &resident(16))),
            civil_servant_status: CivilServantStatus::None as i32,
            civil_servant_since: None,
            existing_appointment: None,
        })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap()
        .id;
    let unknown = "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".to_owned();

    let sessions = vec![days_from_today(10), days_from_today(11)];
    let whole = experts_of(&stream(&mut dispatch(&registry), pool_request(&studio, sessions.clone())).await.unwrap());
    assert_eq!(whole.len(), 4, "{whole:?}");
    let mut asked = pool_request(&studio, sessions.clone());
    asked.expert_ids = vec![
        suspended.clone(),
        lapsed.clone(),
        never.clone(),
        unknown,
        employed.clone(),
        related.clone(),
        employed.clone(),
    ];
    let task = asked.task_id.clone();
    let some = experts_of(&stream(&mut dispatch(&registry), asked).await.unwrap());
    let mut want: Vec<DrawPoolExpert> =
        whole.iter().filter(|e| [&employed, &related, &suspended].contains(&&e.expert_id)).cloned().collect();
    want.sort_by(|a, b| a.expert_id.cmp(&b.expert_id));
    assert_eq!(want.len(), 3);
    assert_eq!(some, want, "the same facts and reasons as the whole pool, in id order");
    assert!(some.iter().all(|e| e.expert_id != left_out));
    assert!(some.iter().find(|e| e.expert_id == employed).unwrap().conflicts.len() == 1);
    assert!(some.iter().find(|e| e.expert_id == suspended).unwrap().scheduled_change.is_some());

    // Only experts the pool does not hold: an empty answer that still ends with its count.
    let mut none = pool_request(&studio, sessions.clone());
    none.expert_ids = vec![lapsed, never];
    let messages = stream(&mut dispatch(&registry), none).await.unwrap();
    assert!(experts_of(&messages).is_empty());

    // The read is audited with the ids asked about.
    let entries = admin(&registry)
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "institution".into(),
            entity_id: studio.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(
        entries
            .iter()
            .any(|e| e.action == "read_draw_pool" && e.after_json.contains(&task) && e.after_json.contains(&employed)),
        "{entries:?}"
    );
    let audited = entries.len();

    // More than 1,000 ids, or a malformed one, is named and reads (and audits) nothing.
    let mut many = pool_request(&studio, sessions.clone());
    many.expert_ids = (0..1001).map(|n| format!("exp_{n:032x}")).collect();
    let err = stream(&mut dispatch(&registry), many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["expert_ids"]);
    let mut thousand = pool_request(&studio, sessions.clone());
    thousand.expert_ids = (0..1000).map(|n| format!("exp_{n:032x}")).collect();
    thousand.expert_ids[999] = employed.clone();
    let found = experts_of(&stream(&mut dispatch(&registry), thousand).await.unwrap());
    assert_eq!(found.iter().map(|e| e.expert_id.as_str()).collect::<Vec<_>>(), [employed.as_str()]);
    let mut malformed = pool_request(&studio, sessions);
    malformed.expert_ids = vec![related, "李明".into()];
    let err = stream(&mut dispatch(&registry), malformed).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["expert_ids[1]"]);
    let after = admin(&registry)
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "institution".into(),
            entity_id: studio,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(after.len(), audited + 1, "only the valid 1,000-id read is audited");
    registry.stop().await;
}

/// One sync read's parts, with the stream's shape checked: batches of experts (at most 1,000, in
/// id order), then the removed ids, then the end with both counts and a version.
struct Synced {
    experts: Vec<DrawPoolExpert>,
    removed: Vec<String>,
    end: supervision_proto::registry::DrawPoolEnd,
}

async fn sync(registry: &RunningService, institution: &str, dates: &[Date], since: &str) -> Synced {
    let mut req = pool_request(institution, dates.to_vec());
    req.sync = true;
    req.since_version = since.to_owned();
    let messages = stream(&mut dispatch(registry), req).await.unwrap();
    let (last, batches) = messages.split_last().expect("at least the end");
    let end = last.end.clone().expect("the stream ends with the counts");
    assert!(last.experts.is_empty() && last.removed_expert_ids.is_empty());
    let experts: Vec<DrawPoolExpert> = batches.iter().flat_map(|m| m.experts.clone()).collect();
    let removed: Vec<String> = batches.iter().flat_map(|m| m.removed_expert_ids.clone()).collect();
    assert!(batches.iter().all(|m| m.end.is_none() && m.experts.len() <= 1000 && m.removed_expert_ids.len() <= 1000));
    assert_eq!((end.expert_count as usize, end.removed_count as usize), (experts.len(), removed.len()));
    assert!(experts.windows(2).all(|w| w[0].expert_id < w[1].expert_id), "in id order");
    assert!(experts.iter().all(|e| e.conflicts.is_empty() && e.scheduled_change.is_none()), "those come in the end");
    assert!(!end.version.is_empty());
    Synced { experts, removed, end }
}

/// A copy built the way dispatch builds it: a full answer replaces it, changes replace and remove.
fn apply(copy: &mut std::collections::BTreeMap<String, DrawPoolExpert>, s: &Synced) {
    if s.end.full {
        copy.clear();
    }
    for id in &s.removed {
        copy.remove(id);
    }
    for e in &s.experts {
        copy.insert(e.expert_id.clone(), e.clone());
    }
}

/// The copy's pool for sessions from `first` with the answer's conflicts and scheduled changes,
/// as the whole pool (a read without `sync`) gives it.
fn as_whole_pool(
    copy: &std::collections::BTreeMap<String, DrawPoolExpert>,
    s: &Synced,
    first: chrono::NaiveDate,
) -> Vec<DrawPoolExpert> {
    let naive = |d: &Date| chrono::NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).unwrap();
    copy.values()
        .filter(|e| {
            let last = e.term_ended.as_ref().or(e.term.as_ref().and_then(|t| t.end.as_ref())).map(naive);
            last.is_some_and(|l| l >= first)
        })
        .map(|e| {
            let mut e = e.clone();
            e.conflicts = s
                .end
                .conflicts
                .iter()
                .find(|c| c.expert_id == e.expert_id)
                .map(|c| c.reasons.clone())
                .unwrap_or_default();
            e.scheduled_change = s.end.scheduled_changes.iter().find(|c| c.expert_id == e.expert_id).cloned();
            e
        })
        .collect()
}

async fn sync_reads_bring_a_copy_to_the_whole_pool_from_any_earlier_version(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let parent = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let studio = institution(&registry, sub_unit(&parent, "江门市技师学院烹饪工作室")).await;
    let decided = Some(days_from_today(-30));
    let mut req = appoint_request("李明", &resident(21), decided);
    req.profile.as_mut().unwrap().employer.as_mut().unwrap().organisation = Some(Organisation {
        name: "江门市技师学院".into(),
        credit_code: PARENT_CODE.into(),
        institution_id: String::new(),
    });
    let employed = appoint(&registry, req).await.expert.unwrap().id;
    let plain = appoint(&registry, appoint_request("张伟", &resident(22), decided)).await.expert.unwrap().id;
    let leaving = appoint(&registry, appoint_request("赵敏", &resident(23), decided)).await.expert.unwrap().id;
    let lapsed = appoint(&registry, appoint_request("钱进", &resident(24), date(2024, 6, 1))).await.expert.unwrap().id;
    let sessions = vec![days_from_today(10), days_from_today(11)];
    let first = {
        let d = &sessions[0];
        chrono::NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).unwrap()
    };

    // The whole pool: every appointed expert whatever the term (the lapsed one too), conflicts
    // in the end, and the same pool as a read without sync.
    let whole = sync(&registry, &studio, &sessions, "").await;
    assert!(whole.end.full && whole.removed.is_empty());
    let mut ids: Vec<&str> = whole.experts.iter().map(|e| e.expert_id.as_str()).collect();
    let mut want = vec![employed.as_str(), plain.as_str(), leaving.as_str(), lapsed.as_str()];
    want.sort_unstable();
    ids.sort_unstable();
    assert_eq!(ids, want);
    assert_eq!(whole.end.conflicts.iter().map(|c| c.expert_id.as_str()).collect::<Vec<_>>(), [employed.as_str()]);
    let mut copy = std::collections::BTreeMap::new();
    apply(&mut copy, &whole);
    let dated = experts_of(&stream(&mut dispatch(&registry), pool_request(&studio, sessions.clone())).await.unwrap());
    assert_eq!(as_whole_pool(&copy, &whole, first), dated);

    // Nothing changed: nothing to send.
    let quiet = sync(&registry, &studio, &sessions, &whole.end.version).await;
    assert!(!quiet.end.full && quiet.experts.is_empty() && quiet.removed.is_empty(), "{:?}", quiet.experts);

    // Changes: a status now, a scheduled one, a relation, a new expert, one leaving the pool.
    suspend(&registry, &plain, None).await;
    suspend(&registry, &employed, Some(days_from_today(20))).await;
    record(&registry, by_bureau(&leaving, RelationType::PaidService, &studio)).await;
    let added = appoint(&registry, appoint_request("王芳", &resident(25), decided)).await.expert.unwrap().id;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    sqlx::query("UPDATE experts SET status = 'NOT_APPOINTED' WHERE id = $1").bind(&lapsed).execute(&db).await.unwrap();

    let changes = sync(&registry, &studio, &sessions, &quiet.end.version).await;
    assert!(!changes.end.full);
    let changed: Vec<&str> = changes.experts.iter().map(|e| e.expert_id.as_str()).collect();
    assert!(changed.contains(&plain.as_str()) && changed.contains(&added.as_str()), "{changed:?}");
    assert!(!changed.contains(&leaving.as_str()), "a relation is not a change to the expert's facts");
    assert_eq!(changes.removed, std::slice::from_ref(&lapsed));
    apply(&mut copy, &changes);
    let dated = experts_of(&stream(&mut dispatch(&registry), pool_request(&studio, sessions.clone())).await.unwrap());
    assert_eq!(as_whole_pool(&copy, &changes, first), dated, "the copy brought up to date is the whole pool");
    assert!(dated.iter().any(|e| e.expert_id == leaving && !e.conflicts.is_empty()));
    assert!(dated.iter().any(|e| e.expert_id == employed && e.scheduled_change.is_some()));

    // From the first version too (two reads' changes at once).
    let mut from_first = std::collections::BTreeMap::new();
    apply(&mut from_first, &whole);
    let both = sync(&registry, &studio, &sessions, &whole.end.version).await;
    apply(&mut from_first, &both);
    assert_eq!(as_whole_pool(&from_first, &both, first), dated);

    // A version the registry cannot place answers the whole pool: malformed, another backend's,
    // or from after the registry's own state (as after a restore).
    let other_backends = if whole.end.version.starts_with("pg:") { "sqlite:7" } else { "pg:1:2:" };
    for since in ["nonsense", "pg:5:3:", other_backends, "pg:999999999999:999999999999:", "sqlite:999999999999"] {
        let answer = sync(&registry, &studio, &sessions, since).await;
        assert!(answer.end.full, "{since}");
        let mut fresh = std::collections::BTreeMap::new();
        apply(&mut fresh, &answer);
        assert_eq!(as_whole_pool(&fresh, &answer, first), dated, "{since}");
    }

    // Bad requests are named and change nothing.
    let mut both_ways = pool_request(&studio, sessions.clone());
    both_ways.sync = true;
    both_ways.expert_ids = vec![plain.clone()];
    assert_eq!(violated_fields(&stream(&mut dispatch(&registry), both_ways).await.unwrap_err()), ["expert_ids"]);
    let mut stray = pool_request(&studio, sessions.clone());
    stray.since_version = whole.end.version.clone();
    assert_eq!(violated_fields(&stream(&mut dispatch(&registry), stray).await.unwrap_err()), ["since_version"]);
    db.close().await;
    registry.stop().await;
}

/// A transaction that changes an expert and commits after a sync read took its version is in
/// the next read's changes, though it began before that read.
async fn a_change_committed_after_a_sync_read_began_is_in_the_next_one() {
    let registry = spawn_registry(Backend::Postgres).await;
    let school = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let decided = Some(days_from_today(-30));
    let expert = appoint(&registry, appoint_request("李明", &resident(31), decided)).await.expert.unwrap().id;
    let sessions = vec![days_from_today(10)];
    let whole = sync(&registry, &school, &sessions, "").await;
    let trained = whole.experts.iter().find(|e| e.expert_id == expert).unwrap().trained;

    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE experts SET trained = 1 - trained WHERE id = $1")
        .bind(&expert)
        .execute(&mut *tx)
        .await
        .unwrap();
    let during = sync(&registry, &school, &sessions, &whole.end.version).await;
    assert!(during.experts.is_empty(), "an uncommitted change is not read");
    tx.commit().await.unwrap();
    let after = sync(&registry, &school, &sessions, &during.end.version).await;
    assert_eq!(
        after.experts.iter().map(|e| (e.expert_id.as_str(), e.trained)).collect::<Vec<_>>(),
        [(expert.as_str(), !trained)]
    );
    db.close().await;
    registry.stop().await;
}
