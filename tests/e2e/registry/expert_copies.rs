//! GetExpert's copies of experts (PostgreSQL; issue 12): a copy is answered only while the expert's
//! stamps (migration `0011_read_stamps.sql`) are those it was read at, so every write shows at
//! once, including writes that bypass the service; an update that changes nothing keeps the copy.
//! On SQLite there are no copies and the same writes show the same way.

use supervision_proto::{
    common::{CivilServantStatus, Evidence, Specialty, SpecialtyCode},
    registry::{Expert, GetExpertRequest, RecordCivilServantStatusRequest},
};
use testkit::{Backend, RunningService, on_both_backends, scrape_metrics, spawn_registry_with_metrics};

use crate::appointments::{admin, appoint, appoint_request, date, id};

on_both_backends!(every_write_shows_in_the_next_read_and_only_unchanged_experts_are_answered_from_a_copy,);

async fn get(registry: &RunningService, id: &str) -> Expert {
    admin(registry).get_expert(GetExpertRequest { id: id.into() }).await.unwrap().into_inner().expert.unwrap()
}

/// `registry_expert_cache_reads_total` by outcome: (hit, changed, miss).
async fn reads(metrics: std::net::SocketAddr) -> (u32, u32, u32) {
    let body = scrape_metrics(metrics).await;
    let value = |outcome: &str| {
        let series = format!("registry_expert_cache_reads_total{{outcome=\"{outcome}\"}} ");
        body.lines().find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok()).unwrap_or(0.0) as u32
    };
    (value("hit"), value("changed"), value("miss"))
}

/// Runs `statement` on the registry's database behind its back, with `expert` as `$1` when given
/// (then it must change one row).
async fn execute(registry: &RunningService, statement: &str, expert: Option<&str>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()));
    let done = match expert {
        Some(expert) => query.bind(expert.to_owned()).execute(&pool).await.unwrap(),
        None => query.execute(&pool).await.unwrap(),
    };
    if expert.is_some() {
        assert_eq!(done.rows_affected(), 1, "{statement}");
    }
    pool.close().await;
}

async fn every_write_shows_in_the_next_read_and_only_unchanged_experts_are_answered_from_a_copy(backend: Backend) {
    let (registry, metrics) = spawn_registry_with_metrics(backend).await;
    let mut req = appoint_request("李明", "440703198506150029", date(2025, 12, 1));
    req.profile.as_mut().unwrap().specialties = vec![Specialty {
        code: Some(SpecialtyCode { code: "4-07-05-01".into(), name: String::new() }),
        level: 0,
        note: "初录".into(),
    }];
    let expert = appoint(&registry, req).await.expert.unwrap().id;
    let copies = backend == Backend::Postgres;
    // (hit, changed, miss) as they should have grown, on PostgreSQL; nothing is counted on SQLite.
    let expect = |counts: (u32, u32, u32)| if copies { counts } else { (0, 0, 0) };

    let first = get(&registry, &expert).await;
    assert_eq!(get(&registry, &expert).await, first);
    assert_eq!(get(&registry, &expert).await, first);
    assert_eq!(reads(metrics).await, expect((2, 0, 1)), "read once, then answered twice from the copy");

    // The lifecycle pass's lock: an update that changes nothing keeps the stamp and the copy.
    execute(&registry, "UPDATE experts SET revision = revision WHERE id = $1", Some(&expert)).await;
    assert_eq!(get(&registry, &expert).await, first);
    assert_eq!(reads(metrics).await, expect((3, 0, 1)));

    // Writes that bypass the service (an operator's repair, say) show all the same: to the row,
    execute(&registry, "UPDATE experts SET professional_title = '高级技师' WHERE id = $1", Some(&expert)).await;
    let read = get(&registry, &expert).await;
    assert_eq!(read.profile.as_ref().unwrap().professional_title, "高级技师");
    assert_eq!(reads(metrics).await, expect((3, 1, 1)));
    // and to a child row.
    execute(&registry, "UPDATE expert_specialties SET note = '复核' WHERE expert_id = $1", Some(&expert)).await;
    let read = get(&registry, &expert).await;
    assert_eq!(read.profile.as_ref().unwrap().specialties[0].note, "复核");
    assert_eq!(reads(metrics).await, expect((3, 2, 1)));

    if copies {
        // The stored child rows made stale by a change that skipped their trigger, then rebuilt by
        // hand as docs/deploy.md says: the rebuild is a write like any other.
        for statement in [
            "ALTER TABLE expert_specialties DISABLE TRIGGER expert_specialties_reads",
            "UPDATE expert_specialties SET note = '手工' WHERE expert_id = $1",
            "ALTER TABLE expert_specialties ENABLE TRIGGER expert_specialties_reads",
        ] {
            execute(&registry, statement, statement.contains("$1").then_some(expert.as_str())).await;
        }
        let note = |e: &Expert| e.profile.as_ref().unwrap().specialties[0].note.clone();
        assert_eq!(note(&get(&registry, &expert).await), "复核", "GetExpert reads the stored child rows");
        let rebuild = "UPDATE expert_reads SET children = expert_children(expert_id) WHERE expert_id = $1";
        execute(&registry, rebuild, Some(&expert)).await;
        assert_eq!(note(&get(&registry, &expert).await), "手工", "the rebuilt document is read");
        // A rebuild that writes the same document keeps the stamp.
        execute(&registry, rebuild, Some(&expert)).await;
        assert_eq!(note(&get(&registry, &expert).await), "手工");
        assert_eq!(reads(metrics).await, (5, 3, 1));
    }
    let before = reads(metrics).await;

    // A write through the service: a civil-servant entry added.
    admin(&registry)
        .record_civil_servant_status(RecordCivilServantStatusRequest {
            request_id: id(),
            expert_id: expert.clone(),
            status: CivilServantStatus::CivilServant as i32,
            valid_from: date(2026, 3, 1),
            evidence: Some(Evidence { description: "录用通知".into(), documents: vec![] }),
            on_behalf: None,
        })
        .await
        .unwrap();
    let read = get(&registry, &expert).await;
    assert_eq!(first.civil_servant_status, CivilServantStatus::None as i32);
    assert_eq!(read.civil_servant_status, CivilServantStatus::CivilServant as i32, "{read:?}");
    assert_eq!(get(&registry, &expert).await, read);
    let grown = expect((1, 1, 0));
    assert_eq!(reads(metrics).await, (before.0 + grown.0, before.1 + grown.1, before.2));
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

/// The stamp checks keep a few of the pool's connections between calls: when the database ends
/// those sessions (a restart, an operator's `pg_terminate_backend`), the next read is answered all
/// the same, checked on a connection the pool has tested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_the_database_ended_the_registrys_sessions_is_answered() {
    let (registry, metrics) = spawn_registry_with_metrics(Backend::Postgres).await;
    let expert = appoint(&registry, appoint_request("李明", "440703198506150029", date(2025, 12, 1))).await;
    let expert = expert.expert.unwrap().id;
    let first = get(&registry, &expert).await;
    assert_eq!(get(&registry, &expert).await, first);
    assert_eq!(get(&registry, &expert).await, first);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(!ended.is_empty() && ended.iter().all(|e| *e), "the registry's sessions were ended: {ended:?}");

    for _ in 0..3 {
        assert_eq!(get(&registry, &expert).await, first);
    }
    assert_eq!(reads(metrics).await, (5, 0, 1), "answered from the copy, checked again after the sessions ended");
    registry.stop().await;
}

/// Reads made at the same time share their stamp checks (one statement per batch): each is still
/// answered with the expert as its request found it. Six experts are read once (their copies
/// kept), three are changed behind the service's back, then 48 reads go at once, eight per expert:
/// every read of a changed expert shows the change, and the counts say which reads a copy served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_made_at_the_same_time_share_checks_and_each_sees_every_write_before_it() {
    let (registry, metrics) = spawn_registry_with_metrics(Backend::Postgres).await;
    let mut experts = Vec::new();
    for k in 0..6 {
        let request = appoint_request(&format!("专家{k}"), &testkit::scenario::id_number(k), date(2025, 12, 1));
        experts.push(appoint(&registry, request).await.expert.unwrap().id);
    }
    let mut first = Vec::new();
    for expert in &experts {
        first.push(get(&registry, expert).await);
    }
    assert_eq!(reads(metrics).await, (0, 0, 6));
    for expert in experts.iter().step_by(2) {
        execute(&registry, "UPDATE experts SET professional_title = '高级技师' WHERE id = $1", Some(expert)).await;
    }

    let mut at_once = tokio::task::JoinSet::new();
    for (n, expert) in experts.iter().cycle().take(48).enumerate() {
        let (mut client, id) = (admin(&registry), expert.clone());
        at_once.spawn(async move { (n, client.get_expert(GetExpertRequest { id }).await) });
    }
    let mut read: Vec<(usize, Expert)> = Vec::new();
    for (n, answer) in at_once.join_all().await {
        read.push((n, answer.expect("every read is answered").into_inner().expert.unwrap()));
    }
    read.sort_by_key(|(n, _)| *n);
    for (n, expert) in &read {
        let k = *n % experts.len();
        let title = &expert.profile.as_ref().unwrap().professional_title;
        if k % 2 == 0 {
            assert_eq!(title, "高级技师", "read {n} of a changed expert");
        } else {
            assert_eq!(expert, &first[k], "read {n} of an unchanged expert");
        }
    }
    // The 24 reads of unchanged experts are hits. Of the 24 of changed ones, at least the first of
    // each found its copy stale; the others found the copy it left, or the same stale one if they
    // were checked in the same batch.
    let (hit, changed, miss) = reads(metrics).await;
    assert_eq!((hit + changed, miss), (48, 6), "({hit}, {changed}, {miss})");
    assert!((24..=45).contains(&hit) && changed >= 3, "({hit}, {changed}, {miss})");
    registry.stop().await;
}
