//! Evidence files (UploadDocument, GetDocument): at most 10 MiB of PDF, JPEG or PNG, kept with
//! their SHA-256; content only for the roles that see the owning expert in full and the expert.

use sha2::Digest;
use supervision_proto::registry::{
    GetDocumentRequest, UploadDocumentRequest, registry_service_client::RegistryServiceClient,
};
use testkit::{Backend, Bureau, Role, identity::expert_token, on_both_backends, spawn_registry, with_token};
use tonic::Code;

use crate::appointments::{admin, appoint, appoint_request, date, violated_fields};

on_both_backends!(an_evidence_file_is_kept_whole_and_shown_only_to_who_may_see_the_expert);

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
