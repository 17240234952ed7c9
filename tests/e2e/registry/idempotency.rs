//! The same `request_id` gives the first answer and one effect; other content is refused.

use supervision_proto::{
    common::BureauCode,
    registry::{
        CreateInstitutionRequest, InstitutionType, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{Backend, Role, on_both_backends, spawn_registry};
use tonic::Code;

on_both_backends!(a_retry_returns_the_first_answer, concurrent_duplicates_have_one_effect, a_request_id_is_required);

fn request(request_id: &str, name: &str) -> CreateInstitutionRequest {
    CreateInstitutionRequest {
        request_id: request_id.into(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: name.into(),
        credit_code: "91110000600037341L".into(),
        county: BureauCode::Taishan as i32,
        ..Default::default()
    }
}

async fn a_retry_returns_the_first_answer(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let first = c.create_institution(request("req-1", "台山学校")).await.unwrap().into_inner();
    let again = c.create_institution(request("req-1", "台山学校")).await.unwrap().into_inner();
    assert_eq!(first, again, "the stored answer, not a new institution or ALREADY_EXISTS");

    let err = c.create_institution(request("req-1", "另一所学校")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Keys are scoped per caller: another user may use the same id for its own request.
    let mut other = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    let err = other.create_institution(request("req-1", "台山学校")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "a new command, refused on its merits");

    let all = c.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.institutions.len(), 1);
    registry.stop().await;
}

async fn concurrent_duplicates_have_one_effect(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let channel = registry.as_role(Role::CityAdmin, None);
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let mut c = RegistryServiceClient::new(channel.clone());
            tokio::spawn(async move { c.create_institution(request("req-concurrent", "并发学校")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for attempt in attempts {
        ids.push(attempt.await.unwrap().expect("every duplicate succeeds").into_inner().institution.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one institution, one answer: {ids:?}");
    let mut c = RegistryServiceClient::new(channel);
    assert_eq!(
        c.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner().institutions.len(),
        1
    );
    registry.stop().await;
}

async fn a_request_id_is_required(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    for bad in ["", "has space", &"x".repeat(129)] {
        let err = c.create_institution(request(bad, "学校")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    registry.stop().await;
}
