//! With TLS on, the gRPC port speaks TLS only and health is also served in plaintext on the
//! health-only port for Kubernetes probes.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use supervision_kit::{app::CommonArgs, config::TlsArgs};
use supervision_proto::registry::{ListInstitutionsRequest, registry_service_client::RegistryServiceClient};
use testkit::{Backend, Role, TestDb};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

#[tokio::test]
async fn tls_on_the_grpc_port_and_plaintext_health_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let (cert, key, ca_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let db = TestDb::new(Backend::Sqlite).await;
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common: CommonArgs {
            tls: TlsArgs {
                tls_cert_file: Some(cert),
                tls_key_file: Some(key),
                tls_client_ca_file: None,
                health_listen: Some("127.0.0.1:0".into()),
            },
            ..testkit::common_args(None)
        },
        reference: Default::default(),
    };
    let app = supervision_registry::App::build(&config).await.unwrap();
    let (addr, health_addr) = (app.local_addr(), app.health_addr().expect("a plaintext health port"));
    let shutdown = supervision_kit::Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca_file).unwrap()))
        .domain_name("localhost");
    let secure =
        Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
    let token = testkit::token(Role::Auditor, None);
    let mut client = RegistryServiceClient::new(testkit::with_token(&secure, Some(&token)));
    client.list_institutions(ListInstitutionsRequest::default()).await.expect("TLS call works");

    let plain = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let refused = RegistryServiceClient::new(testkit::with_token(&plain, Some(&token)))
        .list_institutions(ListInstitutionsRequest::default())
        .await;
    assert!(refused.is_err(), "plaintext is not served on the TLS port");

    let probe = Endpoint::from_shared(format!("http://{health_addr}")).unwrap().connect().await.unwrap();
    let status = HealthClient::new(probe).check(HealthCheckRequest::default()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    shutdown.trigger();
    task.await.unwrap().unwrap();
}
