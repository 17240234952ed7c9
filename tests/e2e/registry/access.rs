//! Identity and access on a real service: tokens are required, verified and scoped.

use std::time::Duration;

use supervision_kit::auth::{TokenIssuer, TokenRequest, generate_key_pair};
use supervision_proto::{
    common::BureauCode,
    registry::{
        CreateInstitutionRequest, InstitutionType, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{Backend, Bureau, Role, identity, on_both_backends, spawn_registry, with_token};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

on_both_backends!(
    no_token_is_unauthenticated_but_health_is_open,
    forged_expired_and_misaddressed_tokens_are_refused,
    a_county_operator_acts_only_in_its_county,
    a_role_not_in_the_table_is_denied,
);

fn institution_in(county: BureauCode) -> CreateInstitutionRequest {
    CreateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: "新会区示例学校".into(),
        credit_code: "91350100M000100Y43".into(),
        county: county as i32,
        ..Default::default()
    }
}

async fn no_token_is_unauthenticated_but_health_is_open(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut anonymous = RegistryServiceClient::new(with_token(&registry.channel, None));
    let err = anonymous.list_institutions(ListInstitutionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let garbage = RegistryServiceClient::new(with_token(&registry.channel, Some("not.a.jwt")))
        .list_institutions(ListInstitutionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);

    let mut health = HealthClient::new(registry.channel.clone());
    assert!(health.check(HealthCheckRequest::default()).await.is_ok(), "probes carry no token");
    registry.stop().await;
}

async fn forged_expired_and_misaddressed_tokens_are_refused(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let admin = TokenRequest {
        subject: "admin".into(),
        role: Role::CityAdmin,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(600),
    };
    let now = chrono::Utc::now();
    let (other_private, _) = generate_key_pair().unwrap();
    let foreign = TokenIssuer::from_private_pem(other_private.as_bytes(), identity::AUDIENCE, identity::ISSUER)
        .unwrap()
        .issue(&admin, now)
        .unwrap();
    let ours = |audience: &str| {
        TokenIssuer::from_private_pem(identity::private_key_pem().as_bytes(), audience, identity::ISSUER).unwrap()
    };
    let wrong_audience = ours("somebody-else").issue(&admin, now).unwrap();
    let expired = ours(identity::AUDIENCE).issue(&admin, now - chrono::Duration::hours(2)).unwrap();
    let valid = ours(identity::AUDIENCE).issue(&admin, now).unwrap();
    let unsigned = {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{}.", valid.split('.').nth(1).unwrap())
    };

    for (what, token) in
        [("another key", foreign), ("wrong audience", wrong_audience), ("expired", expired), ("alg=none", unsigned)]
    {
        let err = RegistryServiceClient::new(with_token(&registry.channel, Some(&token)))
            .list_institutions(ListInstitutionsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
    }
    assert!(
        RegistryServiceClient::new(with_token(&registry.channel, Some(&valid)))
            .list_institutions(ListInstitutionsRequest::default())
            .await
            .is_ok()
    );

    // The service's clock decides expiry: moved three hours ahead, today's token has expired.
    registry.set_clock_offset(3 * 3600);
    let err = RegistryServiceClient::new(with_token(&registry.channel, Some(&valid)))
        .list_institutions(ListInstitutionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    registry.stop().await;
}

async fn a_county_operator_acts_only_in_its_county(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut xinhui = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    let err = xinhui.create_institution(institution_in(BureauCode::Heshan)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let listed = xinhui.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.institutions.is_empty(), "the refused request changed nothing");
    xinhui.create_institution(institution_in(BureauCode::Xinhui)).await.expect("its own county is allowed");
    registry.stop().await;
}

async fn a_role_not_in_the_table_is_denied(backend: Backend) {
    let registry = spawn_registry(backend).await;
    for (role, bureau) in [(Role::Auditor, None), (Role::Expert, None), (Role::Finance, Some(Bureau::City))] {
        let err = RegistryServiceClient::new(registry.as_role(role, bureau))
            .create_institution(institution_in(BureauCode::Xinhui))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role}");
    }
    let expert_read = RegistryServiceClient::new(registry.as_role(Role::Expert, None))
        .list_institutions(ListInstitutionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(expert_read.code(), Code::PermissionDenied);
    registry.stop().await;
}
