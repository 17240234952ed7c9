//! Evidence files (UploadDocument, GetDocument): at most 10 MiB of PDF, JPEG or PNG, kept with
//! their SHA-256; content only for the roles that see the owning expert in full and the expert.

use sha2::Digest;
use supervision_proto::registry::{
    GetDocumentRequest, UploadDocumentRequest, registry_service_client::RegistryServiceClient,
};
use testkit::{Backend, Bureau, Role, identity::expert_token, on_both_backends, spawn_registry, with_token};
use tonic::Code;

use crate::appointments::{admin, appoint, appoint_request, date, violated_fields};

on_both_backends!(
    an_evidence_file_is_kept_whole_and_shown_only_to_who_may_see_the_expert,
    a_file_is_stored_encrypted_and_one_stored_before_encryption_still_reads,
);

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {text}\n%%EOF\n").into_bytes()
}

fn upload(expert_id: &str, media_type: &str, content: Vec<u8>) -> UploadDocumentRequest {
    UploadDocumentRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        expert_id: expert_id.into(),
        file_name: "技师证书.pdf".into(),
        media_type: media_type.into(),
        content,
    }
}

async fn an_evidence_file_is_kept_whole_and_shown_only_to_who_may_see_the_expert(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let one =
        appoint(&registry, appoint_request("李明", "440703198506150029", date(2025, 12, 1))).await.expert.unwrap().id;
    let other =
        appoint(&registry, appoint_request("王芳", "440781197203040118", date(2025, 12, 1))).await.expert.unwrap().id;

    let content = pdf("certificate of 李明");
    let req = upload(&one, "application/pdf", content.clone());
    let stored = c.upload_document(req.clone()).await.unwrap().into_inner().document.unwrap();
    assert!(stored.id.starts_with("doc_"));
    assert_eq!(stored.size_bytes, content.len() as i64);
    assert_eq!(stored.sha256, hex::encode(sha2::Sha256::digest(&content)));
    assert_eq!(c.upload_document(req).await.unwrap().into_inner().document.unwrap(), stored, "a retry");

    // City staff, auditors and the expert read it whole.
    for channel in [
        registry.as_role(Role::CityAdmin, None),
        registry.as_role(Role::CityReviewer, None),
        registry.as_role(Role::Auditor, None),
        with_token(&registry.channel, Some(&expert_token(&one))),
    ] {
        let got = RegistryServiceClient::new(channel)
            .get_document(GetDocumentRequest { id: stored.id.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (got.content, got.expert_id.as_str(), got.document.unwrap()),
            (content.clone(), one.as_str(), stored.clone())
        );
    }
    // Another expert does not learn it exists; an operator may not read files at all.
    let mut stranger = RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(&other))));
    let err = stranger.get_document(GetDocumentRequest { id: stored.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut county = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    let err = county.get_document(GetDocumentRequest { id: stored.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // An operator uploads evidence (a referral); an expert only for their own record.
    county.upload_document(upload(&other, "image/png", b"\x89PNG\r\n\x1a\nrest".to_vec())).await.unwrap();
    let err = stranger.upload_document(upload(&one, "application/pdf", pdf("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    stranger.upload_document(upload(&other, "image/jpeg", b"\xFF\xD8\xFF\xE0jfif".to_vec())).await.unwrap();

    // Bad files are named and nothing is stored.
    let err = c.upload_document(upload(&one, "text/plain", b"hello".to_vec())).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["media_type"]);
    let err = c.upload_document(upload(&one, "application/pdf", b"\x89PNG\r\n\x1a\n".to_vec())).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["content"]);
    let mut big = pdf("big");
    big.resize(10 * 1024 * 1024 + 1, b' ');
    let err = c.upload_document(upload(&one, "application/pdf", big)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["content"]);
    let err = c
        .upload_document(upload("exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f", "application/pdf", pdf("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err =
        c.get_document(GetDocumentRequest { id: "doc_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// The stored `content` and `content_encryption` of document `id`.
async fn stored_row(pool: &sqlx::AnyPool, id: &str) -> (Vec<u8>, String) {
    sqlx::query_as("SELECT content, content_encryption FROM documents WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn a_file_is_stored_encrypted_and_one_stored_before_encryption_still_reads(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let one =
        appoint(&registry, appoint_request("李明", "440703198506150029", date(2025, 12, 1))).await.expert.unwrap().id;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();

    // Upload, then read back whole; the database holds ciphertext, not the file.
    let marker = "身份证扫描件 440703198506150029 MARKER-7f3a";
    let content = pdf(marker);
    let stored = c.upload_document(upload(&one, "application/pdf", content.clone())).await.unwrap().into_inner();
    let stored = stored.document.unwrap();
    let got = c.get_document(GetDocumentRequest { id: stored.id.clone() }).await.unwrap().into_inner();
    assert_eq!((got.content, got.document.unwrap()), (content.clone(), stored.clone()));
    assert_eq!(stored.sha256, hex::encode(sha2::Sha256::digest(&content)), "the digest is of the plain file");
    let (at_rest, encryption) = stored_row(&pool, &stored.id).await;
    assert_eq!(encryption, "pd1");
    assert_ne!(at_rest, content);
    assert_eq!(at_rest.len(), content.len() + 28, "nonce and tag around the ciphertext");
    assert!(!at_rest.windows(b"%PDF-".len()).any(|w| w == b"%PDF-"));
    assert!(!at_rest.windows(b"MARKER-7f3a".len()).any(|w| w == b"MARKER-7f3a"));
    let again = c.upload_document(upload(&one, "application/pdf", content.clone())).await.unwrap().into_inner();
    let (twice, _) = stored_row(&pool, &again.document.unwrap().id).await;
    assert_ne!(twice, at_rest, "a fresh nonce for every file");

    // A row written before migration 0008 holds the file as uploaded and still reads.
    let legacy = pdf("stored before encryption");
    let legacy_id = "doc_0192f0c8a1b27c3d8e4f5a6b7c8d9e01";
    sqlx::query(
        "INSERT INTO documents (id, expert_id, file_name, media_type, size_bytes, sha256, content, \
         uploaded_by_subject, uploaded_by_role, uploaded_at) \
         VALUES ($1, $2, 'old.pdf', 'application/pdf', $3, $4, $5, 'admin', 'CITY_ADMIN', '2026-01-05T02:00:00Z')",
    )
    .bind(legacy_id)
    .bind(&one)
    .bind(legacy.len() as i64)
    .bind(hex::encode(sha2::Sha256::digest(&legacy)))
    .bind(legacy.clone())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(stored_row(&pool, legacy_id).await.1, "", "the column's default marks old rows plain");
    let got = c.get_document(GetDocumentRequest { id: legacy_id.into() }).await.unwrap().into_inner();
    assert_eq!(got.content, legacy);
    assert_eq!(got.expert_id, one);

    // Ciphertext moved to another row, or altered, is never served.
    sqlx::query("UPDATE documents SET content = $1 WHERE id = $2")
        .bind(at_rest.clone())
        .bind(legacy_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE documents SET content_encryption = 'pd1' WHERE id = $1")
        .bind(legacy_id)
        .execute(&pool)
        .await
        .unwrap();
    let err = c.get_document(GetDocumentRequest { id: legacy_id.into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let mut altered = at_rest;
    *altered.last_mut().unwrap() ^= 1;
    sqlx::query("UPDATE documents SET content = $1 WHERE id = $2")
        .bind(altered)
        .bind(&stored.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = c.get_document(GetDocumentRequest { id: stored.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains(marker), "{err:?}");
    pool.close().await;
}
