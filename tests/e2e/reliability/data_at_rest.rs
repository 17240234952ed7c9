//! Data at rest: after experts are appointed with ID numbers, mobiles and bank accounts in the
//! registry, an evidence file (a scan carrying an ID number) uploaded for one of them, their payee
//! details read for finance, and an applicant's application entered in recruitment with a
//! material (a scan carrying their ID number), a dump of every text (and binary) column of every
//! table of each of the four services' databases holds none of those numbers, nor the files'
//! marker bytes, in the clear, nor hex-encoded.

use supervision_proto::{
    common::{
        self, BankAccount, BureauCode, CivilServantStatus, ContactDetails, Date, EligibilityCondition, ExpertCategory,
        ExpertKind, IdentityDocument, IdentityDocumentType, Locality, Organisation, locality::Place,
    },
    recruitment::{
        ApplicantProfile, CategoryClaim, ConditionAttestation, CreateApplicationRequest, CreateCallRequest,
        GetMaterialRequest, MaterialKind, PublicationChannel, RecordCallPublicationRequest, UploadMaterialRequest,
        recruitment_service_client::RecruitmentServiceClient, upload_material_request::Owner,
    },
    registry::{
        AppointExpertRequest, CategoryHolding, ExpertProfile, GetDocumentRequest, GetPayeeRequest,
        UploadDocumentRequest, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{Backend, Bureau, Role, on_both_backends, service_acting_for, spawn_deployment};

on_both_backends!(no_service_database_holds_a_plain_id_number_or_account);

/// A resident ID number (GB 11643-1999) born 1980-01-01 in Pengjiang with sequence `seq`:
/// 17 digits and the check character their weighted sum decides.
fn id_number(seq: u32) -> String {
    let body = format!("440703198001{:02}{:03}", 1 + seq % 28, 100 + seq);
    let sum: u32 = body.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * ((1u32 << (17 - i)) % 11)).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

fn account(seq: u32) -> String {
    format!("6217002870{:09}", 31_000_000 + seq)
}

fn mobile(seq: u32) -> String {
    format!("1362750{:04}", 2000 + seq)
}

fn expert_profile(seq: u32) -> ExpertProfile {
    ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("存储检查专家{seq}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: id_number(seq),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Pengjiang as i32)) }),
        contact: Some(ContactDetails { mobile: mobile(seq), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(Organisation {
                name: format!("江门市第{seq}技工学校"),
                credit_code: String::new(),
                institution_id: String::new(),
            }),
            post: "高级讲师".into(),
            since: Some(Date { year: 2012, month: 3, day: 1 }),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: Some(common::Evidence { description: "高级技师证书".into(), documents: vec![] }),
            verified: true,
            ..Default::default()
        }],
        bank_account: Some(BankAccount {
            holder_name: format!("存储检查专家{seq}"),
            bank_name: "中国建设银行".into(),
            branch_name: "江门蓬江支行".into(),
            account_number: account(seq),
            masked: false,
        }),
        ..Default::default()
    }
}

fn applicant_profile(seq: u32) -> ApplicantProfile {
    ApplicantProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("存储检查申报人{seq}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: id_number(seq),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(Bureau::Pengjiang.to_proto() as i32)) }),
        contact: Some(ContactDetails { mobile: mobile(seq), ..Default::default() }),
        categories: vec![CategoryClaim { category: ExpertCategory::Technician as i32, ..Default::default() }],
        conditions: [
            EligibilityCondition::Commitment,
            EligibilityCondition::Integrity,
            EligibilityCondition::Competence,
            EligibilityCondition::CleanRecord,
        ]
        .into_iter()
        .map(|c| ConditionAttestation {
            condition: c as i32, declaration: "本人承诺符合".into(), material_ids: vec![]
        })
        .collect(),
        civil_servant_status: CivilServantStatus::None as i32,
        ..Default::default()
    }
}

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn no_service_database_holds_a_plain_id_number_or_account(backend: Backend) {
    let d = spawn_deployment(backend).await;
    let mut secrets = Vec::new();

    // Registry: experts appointed (recruitment's outbox call) with every personal number.
    let mut appointing =
        RegistryServiceClient::new(service_acting_for(&d.registry.channel, "recruitment", Role::CityAdmin, None));
    let mut expert_ids = Vec::new();
    for seq in 1..=3 {
        let application = format!("app_{}", uuid::Uuid::now_v7().simple());
        let expert = appointing
            .appoint_expert(AppointExpertRequest {
                request_id: application.clone(),
                application_id: application,
                profile: Some(expert_profile(seq)),
                civil_servant_status: CivilServantStatus::None as i32,
                decision_date: Some(Date { year: 2026, month: 3, day: 2 }),
                term_start: None,
                replaces_expert_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .expert
            .unwrap();
        expert_ids.push(expert.id);
        secrets.extend([id_number(seq), account(seq), mobile(seq)]);
    }
    // Payees as finance reads them for an export (finance's own token, acting for FINANCE):
    // the registry answers the full account, audits the read, and must not store it plain.
    let mut finance_reads = RegistryServiceClient::new(service_acting_for(
        &d.registry.channel,
        "finance",
        Role::Finance,
        Some(Bureau::City),
    ));
    for (n, id) in expert_ids.iter().enumerate() {
        let payee = finance_reads
            .get_payee(GetPayeeRequest { expert_id: id.clone(), purpose: "exp_reliability-check".into() })
            .await
            .unwrap()
            .into_inner();
        let seq = u32::try_from(n).unwrap() + 1;
        let read = payee.bank_account.unwrap().account_number;
        assert_eq!(read, account(seq), "the number is held and answered in full");
    }

    // An evidence file for the first expert: a scan whose bytes hold their ID number and a marker.
    // The registry reads it back whole, and must keep it only encrypted.
    let marker = "EVIDENCE-SCAN-MARKER-5d1c9e";
    let scan = format!("%PDF-1.7\n% {marker} 居民身份证 {}\n%%EOF\n", id_number(1)).into_bytes();
    let mut staff = RegistryServiceClient::new(d.registry.as_role(Role::CityAdmin, None));
    let document = staff
        .upload_document(UploadDocumentRequest {
            request_id: rid(),
            expert_id: expert_ids[0].clone(),
            file_name: "身份证扫描件.pdf".into(),
            media_type: "application/pdf".into(),
            content: scan.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    let read = staff.get_document(GetDocumentRequest { id: document.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.content, scan, "the file is held and answered whole");
    secrets.push(marker.to_owned());

    // Recruitment: a published call and an application with another person's numbers.
    let mut admin = RecruitmentServiceClient::new(d.recruitment.as_role(Role::CityAdmin, None));
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let call_id = admin
        .create_call(CreateCallRequest {
            request_id: rid(),
            year: 2026,
            title: "2026 年社会监督专家征集".into(),
            body: "面向社会公开征集社会监督专家。".into(),
            categories_sought: vec![ExpertCategory::Technician as i32],
            specialties_sought: vec![],
            industries_sought: vec![],
            application_start_time: Some(ts(now - chrono::Duration::days(1))),
            application_end_time: Some(ts(now + chrono::Duration::days(14))),
            required_materials: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap()
        .id;
    let today = (now + chrono::Duration::hours(8)).date_naive();
    use chrono::Datelike;
    admin
        .record_call_publication(RecordCallPublicationRequest {
            request_id: rid(),
            call_id: call_id.clone(),
            channel: PublicationChannel::OfficialWebsite as i32,
            publish_date: Some(Date { year: today.year(), month: today.month() as i32, day: today.day() as i32 }),
            address: "https://hrss.jiangmen.gov.cn/tzgg/zhengji.html".into(),
        })
        .await
        .unwrap();
    let mut applicant = RecruitmentServiceClient::new(d.recruitment.as_user("applicant-wang", Role::Applicant, None));
    let application_id = applicant
        .create_application(CreateApplicationRequest {
            request_id: rid(),
            call_id,
            profile: Some(applicant_profile(9)),
            replaces_expert_id: String::new(),
            on_behalf: None,
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap()
        .id;
    secrets.extend([id_number(9), mobile(9)]);
    // A material of that application: a scan of the applicant's ID card with another marker.
    let material_marker = "MATERIAL-SCAN-MARKER-8a4f1c";
    let card = format!("%PDF-1.7\n% {material_marker} 居民身份证 {}\n%%EOF\n", id_number(9)).into_bytes();
    let material = applicant
        .upload_material(UploadMaterialRequest {
            request_id: rid(),
            owner: Some(Owner::ApplicationId(application_id)),
            kind: MaterialKind::IdentityDocument as i32,
            category: 0,
            condition: 0,
            file_name: "申报人身份证.pdf".into(),
            media_type: "application/pdf".into(),
            content: card.clone(),
            description: "居民身份证扫描件".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    let read = applicant.get_material(GetMaterialRequest { id: material.id }).await.unwrap().into_inner();
    assert_eq!(read.content, card, "the material is held and answered whole");
    secrets.push(material_marker.to_owned());

    let urls: Vec<(&str, String)> = vec![
        ("registry", d.registry.database_url().to_owned()),
        ("recruitment", d.recruitment.database_url().to_owned()),
        ("dispatch", d.dispatch.database_url().to_owned()),
        ("finance", d.finance.database_url().to_owned()),
    ];
    let mut found = Vec::new();
    let mut values = 0;
    for (service, url) in &urls {
        let dump = dump(url).await;
        values += dump.len();
        if *service == "registry" {
            assert!(dump.contains("存储检查专家1"), "the dump reads the registry's rows (names are plain)");
            assert!(dump.contains("身份证扫描件.pdf"), "the dump reads the documents table (file names are plain)");
        }
        if *service == "recruitment" {
            assert!(dump.contains("存储检查申报人9"), "the dump reads recruitment's rows");
            assert!(dump.contains("申报人身份证.pdf"), "the dump reads the materials table (file names are plain)");
        }
        for secret in &secrets {
            let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
            if dump.contains(secret.as_str()) || dump.contains(&hex) {
                found.push(format!("{service} holds {secret} in the clear"));
            }
        }
    }
    assert!(values > 0);
    assert!(found.is_empty(), "{}", found.join("\n"));
    d.stop().await;
}

/// Every value of every column of every table of the database at `url`, one a line: as text
/// where it reads as UTF-8, else as lower-case hex.
async fn dump(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let postgres = url.starts_with("postgres");
    let tables: Vec<(String, String)> = if postgres {
        sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    } else {
        sqlx::query_as(
            "SELECT t.name, c.name FROM sqlite_schema t, pragma_table_info(t.name) c \
             WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    assert!(tables.len() > 5, "{url}: only {} columns found", tables.len());
    let mut out = String::new();
    for (table, column) in tables {
        // Hex of the stored bytes, whatever the column's type: text, blobs and numbers alike.
        let query = if postgres {
            format!("SELECT encode(convert_to(\"{column}\"::text, 'UTF8'), 'hex') FROM \"{table}\"")
        } else {
            format!("SELECT hex(CAST(\"{column}\" AS BLOB)) FROM \"{table}\"")
        };
        let rows: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(query)).fetch_all(&pool).await.unwrap();
        for hex in rows.into_iter().flatten() {
            let hex = hex.to_ascii_lowercase();
            let bytes: Vec<u8> =
                (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
            out.push_str(&String::from_utf8_lossy(&bytes));
            out.push('\n');
            out.push_str(&hex);
            out.push('\n');
        }
    }
    pool.close().await;
    out
}
