//! The one-statement reads on PostgreSQL (the expert's row with each child table aggregated as
//! JSON, no transaction; and GetExpert's, with the child rows as `expert_reads` stores them)
//! against the assembled read (the row, then one query per child table, in one snapshot) that
//! SQLite uses: the same expert, field for field, for an expert with every kind of child row;
//! ListExperts' page (one statement on PostgreSQL too) reads the same.

use supervision_kit::personal::PersonalDataKey;
use supervision_proto::{
    common::{
        BankAccount, CivilServantStatus, EligibilityCondition, Evidence, ExpertCategory, IdentityDocument,
        IdentityDocumentType, Specialty, SpecialtyCode,
    },
    registry::{CategoryHolding, ConditionRecord, RecordCivilServantStatusRequest},
};
use supervision_registry::{
    domain::{ExpertFilter, ExpertId},
    store::experts,
};
use testkit::{Backend, on_both_backends, personal_data_key_file, spawn_registry};

use crate::appointments::{admin, appoint, appoint_request, date, id};

on_both_backends!(the_one_statement_read_equals_the_assembled_read,);

fn evidence(text: &str) -> Option<Evidence> {
    Some(Evidence { description: text.into(), documents: vec![] })
}

async fn the_one_statement_read_equals_the_assembled_read(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut req = appoint_request("李明", "440703198506150029", date(2025, 12, 1));
    req.civil_servant_status = CivilServantStatus::CivilServant as i32;
    let p = req.profile.as_mut().unwrap();
    p.other_identities = vec![IdentityDocument {
        r#type: IdentityDocumentType::Passport as i32,
        number: "E98765432".into(),
        issuing_country: "CAN".into(),
        masked: false,
    }];
    let contact = p.contact.as_mut().unwrap();
    contact.email = "li.ming@example.com".into();
    contact.address = "江门市新会区会城街道示例路 8 号".into();
    p.bank_account = Some(BankAccount {
        holder_name: "李明".into(),
        bank_name: "中国工商银行".into(),
        branch_name: "江门分行营业部".into(),
        account_number: "6222021234567890123".into(),
        masked: false,
    });
    p.categories.push(CategoryHolding {
        category: ExpertCategory::AssessorOrQualitySupervisor as i32,
        evidence: evidence("考评员证\"引号\"\n换行"),
        ..Default::default()
    });
    p.conditions = vec![
        ConditionRecord {
            condition: EligibilityCondition::Integrity as i32,
            evidence: evidence("单位推荐"),
            met: true,
            note: "核实".into(),
            ..Default::default()
        },
        ConditionRecord {
            condition: EligibilityCondition::Commitment as i32,
            evidence: evidence("承诺书"),
            met: false,
            ..Default::default()
        },
    ];
    p.specialties = vec![Specialty {
        code: Some(SpecialtyCode { code: "4-07-05-01".into(), name: String::new() }),
        level: 0,
        note: "备注".into(),
    }];
    let expert_id = appoint(&registry, req).await.expert.unwrap().id;
    admin(&registry)
        .record_civil_servant_status(RecordCivilServantStatusRequest {
            request_id: id(),
            expert_id: expert_id.clone(),
            status: CivilServantStatus::None as i32,
            valid_from: date(2026, 3, 1),
            evidence: evidence("离职证明"),
            on_behalf: None,
        })
        .await
        .unwrap();
    registry.assert_expert_reads_current().await;
    let db = registry.stop_keeping_database().await;

    let key = PersonalDataKey::from_file(&personal_data_key_file(&db)).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
    let expert_id = ExpertId::parse(&expert_id).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let read = experts::get_expert(&mut conn, &key, &expert_id).await.unwrap().expect("the expert is read");
    let mut snapshot = pool.begin().await.unwrap();
    let assembled =
        experts::get_expert_assembled(&mut snapshot, &key, &expert_id).await.unwrap().expect("the expert is read");
    drop(snapshot);

    assert_eq!(read, assembled);
    let (committed, stamp) =
        experts::get_committed_expert(&mut conn, &key, &expert_id).await.unwrap().expect("the expert is read");
    assert_eq!(committed, assembled, "the stored child rows (expert_reads on PostgreSQL) read the same");
    assert_eq!(stamp.is_some(), backend == Backend::Postgres, "stamped on PostgreSQL only: {stamp:?}");
    if let Some(stamp) = stamp {
        let current = experts::read_stamp(&mut conn, &expert_id).await.unwrap();
        assert_eq!(current, Some(stamp), "the stamp alone reads the same");
        assert!(stamp.children.is_some(), "the expert's child rows are stored: {stamp:?}");
    }
    let page = supervision_kit::Page { size: 10, after: None };
    let listed = experts::list_experts(&mut conn, &key, &ExpertFilter::default(), &page).await.unwrap();
    assert_eq!(listed, [assembled], "ListExperts' page reads the same expert");
    let p = &read.profile;
    assert_eq!(
        (p.other_identities.len(), p.categories.len(), p.conditions.len(), p.specialties.len()),
        (1, 2, 2, 1),
        "every kind of child row is there: {read:?}"
    );
    assert_eq!(p.contact.email, "li.ming@example.com", "personal values decrypted");
    assert_eq!(read.civil_servant.len(), 2, "{:?}", read.civil_servant);
    assert!(read.civil_servant[0].seq < read.civil_servant[1].seq, "in recording order");
    assert_eq!(read.appointment.as_ref().map(|a| a.term_number), Some(1));

    assert_eq!(experts::get_expert(&mut conn, &key, &ExpertId::generate()).await.unwrap(), None, "no such expert");
    drop(conn);
    pool.close().await;
}
