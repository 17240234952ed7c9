//! Writes that lose a race with another transaction (issue 5 review findings): a CreateExpert
//! whose identity document another expert takes between the check and the insert names that
//! expert, and an UpdateExpert whose row another transaction moved on answers the revision it
//! left, not a guess; neither writes anything. And an expert's stored read (`expert_reads`, kept
//! by triggers at commit) stays the one computed from the child tables when transactions change
//! the same expert at once, through the service and behind its back.
//!
//! PostgreSQL only: on SQLite every write transaction takes the database's write lock with its
//! first statement (`BEGIN IMMEDIATE`), so a check and its write cannot be separated by another
//! writer. Here the test holds the other transaction open itself, waits until the registry's
//! statement is blocked on it, and then commits, so the race is lost every time.

use std::time::Duration;

use supervision_proto::{
    common::{CivilServantStatus, EntryChannel, OnBehalf, Specialty, SpecialtyCode},
    registry::{
        CreateExpertRequest, Expert, GetExpertRequest, ListExpertsRequest, RecordCivilServantStatusRequest,
        UpdateExpertRequest,
    },
};
use testkit::{Backend, RunningService, spawn_registry};
use tonic::Code;
use tonic_types::StatusExt;

use crate::appointments::{admin, id, profile, reason_of};

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_taken_by_a_concurrent_registration_names_its_holder() {
        super::a_document_taken_by_a_concurrent_registration_names_its_holder().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_update_that_lost_a_race_answers_the_revision_it_lost_to() {
        super::an_update_that_lost_a_race_answers_the_revision_it_lost_to().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_to_one_expert_leave_its_stored_read_current() {
        super::concurrent_changes_to_one_expert_leave_its_stored_read_current().await;
    }
}

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";

async fn create(registry: &RunningService, name: &str, number: &str) -> Expert {
    let req = CreateExpertRequest {
        request_id: id(),
        profile: Some(profile(name, number)),
        civil_servant_status: CivilServantStatus::None as i32,
        ..Default::default()
    };
    admin(registry).create_expert(req).await.unwrap().into_inner().expert.unwrap()
}

async fn pool(registry: &RunningService) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(registry.database_url()).await.unwrap()
}

/// Waits until a statement of the test's database waits on a lock the test holds.
async fn wait_until_blocked(pool: &sqlx::AnyPool) {
    for _ in 0..400 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the registry's write never waited on the transaction the test holds open");
}

async fn a_document_taken_by_a_concurrent_registration_names_its_holder() {
    let registry = spawn_registry(Backend::Postgres).await;
    let holder = create(&registry, "李明", ID_A).await;
    let pool = pool(&registry).await;
    // The holder's document is parked under another index value, so the registry's check finds
    // the document free; the test then puts it back in a transaction it keeps open.
    let index: String = sqlx::query_scalar("SELECT blind_index FROM expert_documents WHERE expert_id = $1")
        .bind(&holder.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE expert_documents SET blind_index = $1 WHERE expert_id = $2")
        .bind(format!("{index}-parked"))
        .bind(&holder.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut other = pool.begin().await.unwrap();
    sqlx::query("UPDATE expert_documents SET blind_index = $1 WHERE expert_id = $2")
        .bind(&index)
        .bind(&holder.id)
        .execute(&mut *other)
        .await
        .unwrap();

    let racing = {
        let mut c = admin(&registry);
        let req = CreateExpertRequest {
            request_id: id(),
            profile: Some(profile("李明", ID_A)),
            civil_servant_status: CivilServantStatus::None as i32,
            ..Default::default()
        };
        tokio::spawn(async move { c.create_expert(req).await })
    };
    wait_until_blocked(&pool).await;
    other.commit().await.unwrap();
    let err = racing.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(reason_of(&err), "IDENTITY_DOCUMENT_TAKEN");
    let info = err.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata.get("expert_id"), Some(&holder.id), "the holder, not a placeholder");
    assert!(!err.message().contains(ID_A), "the message never shows the number");

    // Nothing was written: the holder is the only expert.
    let listed = admin(&registry).list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
    let ids: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [holder.id.as_str()]);
    pool.close().await;
    registry.stop().await;
}

async fn an_update_that_lost_a_race_answers_the_revision_it_lost_to() {
    let registry = spawn_registry(Backend::Postgres).await;
    let expert = create(&registry, "王芳", ID_B).await;
    let pool = pool(&registry).await;
    // Another writer holds the row and moves it on by five revisions.
    let mut other = pool.begin().await.unwrap();
    sqlx::query("UPDATE experts SET revision = revision + 5 WHERE id = $1")
        .bind(&expert.id)
        .execute(&mut *other)
        .await
        .unwrap();

    let racing = {
        let mut c = admin(&registry);
        let mut changed = profile("王芳", ID_B);
        changed.specialties = vec![Specialty {
            code: Some(SpecialtyCode { code: "6-18".into(), name: String::new() }),
            ..Default::default()
        }];
        let req = UpdateExpertRequest {
            request_id: id(),
            id: expert.id.clone(),
            profile: Some(changed),
            update_mask: Some(prost_types::FieldMask { paths: vec!["specialties".into()] }),
            expected_revision: 0,
            reason: "专业变更".into(),
            on_behalf: Some(OnBehalf {
                channel: EntryChannel::Phone as i32,
                received_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
                note: "本人来电".into(),
            }),
        };
        tokio::spawn(async move { c.update_expert(req).await })
    };
    wait_until_blocked(&pool).await;
    other.commit().await.unwrap();
    let err = racing.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert_eq!(reason_of(&err), "REVISION_MISMATCH");
    let info = err.get_error_details().error_info().cloned().unwrap();
    let lost_to = expert.revision + 5;
    assert_eq!(info.metadata.get("expected_revision"), Some(&expert.revision.to_string()));
    assert_eq!(info.metadata.get("revision"), Some(&lost_to.to_string()), "the stored revision, not a guess");

    // Nothing was written by the refused update.
    let now = admin(&registry)
        .get_expert(GetExpertRequest { id: expert.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap();
    assert_eq!(now.revision, lost_to);
    assert!(now.profile.unwrap().specialties.is_empty());
    pool.close().await;
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

/// Six civil-servant entries recorded through the service and six specialties inserted straight
/// into the table by transactions that take no lock on the expert first (as a careless writer
/// would), all at once: each transaction's trigger locks the expert at commit and computes from
/// what is committed, so the last to commit leaves the whole picture.
async fn concurrent_changes_to_one_expert_leave_its_stored_read_current() {
    let registry = spawn_registry(Backend::Postgres).await;
    let expert = create(&registry, "李明", ID_A).await;
    let pool = pool(&registry).await;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..6_i32 {
        let mut c = admin(&registry);
        let expert_id = expert.id.clone();
        writers.spawn(async move {
            let valid_from = supervision_proto::common::Date { year: 2024, month: i + 1, day: 1 };
            c.record_civil_servant_status(RecordCivilServantStatusRequest {
                request_id: id(),
                expert_id,
                status: CivilServantStatus::None as i32,
                valid_from: Some(valid_from),
                evidence: Some(supervision_proto::common::Evidence { description: "证明".into(), documents: vec![] }),
                on_behalf: None,
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string())
        });
        let pool = pool.clone();
        let expert_id = expert.id.clone();
        writers.spawn(async move {
            let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
            sqlx::query(
                "INSERT INTO expert_specialties (expert_id, ordinal, code, level, note) \
                 VALUES ($1, $2, '4-07-05-01', '', $3)",
            )
            .bind(&expert_id)
            .bind(10 + i)
            .bind(format!("written behind the service {i}"))
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.commit().await.map_err(|e| e.to_string())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap().unwrap();
    }
    registry.assert_expert_reads_current().await;
    let read = admin(&registry)
        .get_expert(GetExpertRequest { id: expert.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap();
    assert_eq!(read.profile.unwrap().specialties.len(), 6, "every specialty written behind the service is read");
    let entries: i32 = sqlx::query_scalar(
        "SELECT json_array_length(CAST(children AS json) -> 'civil_servant') FROM expert_reads WHERE expert_id = $1",
    )
    .bind(&expert.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(entries, 7, "the first entry and the six recorded");
    pool.close().await;
    registry.stop().await;
}
