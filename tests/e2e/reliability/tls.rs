//! TLS between services, by configuration only (issue 11, item 6): the registry serves TLS and
//! requires client certificates from its CA (`TLS_CERT_FILE`, `TLS_KEY_FILE`,
//! `TLS_CLIENT_CA_FILE`), and dispatch calls it at an `https://` endpoint (`REGISTRY_ENDPOINT`),
//! verifying it with `PEER_CA_FILE` and presenting its own certificate (its `TLS_CERT_FILE`).
//!
//! - Configured so, dispatch's CreateTask (which reads the institution from the registry before
//!   it writes) succeeds.
//! - A dispatch whose `PEER_CA_FILE` is another CA refuses the registry's certificate: the call is
//!   UNAVAILABLE and dispatch wrote nothing (no task, its audit chain where it was).
//! - A dispatch with the right CA but no certificate of its own is refused by the registry's
//!   mutual TLS: UNAVAILABLE, nothing written.
//! - A dispatch calling the TLS port in plaintext (`http://`) fails the same way.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use supervision_kit::{Shutdown, app::CommonArgs, config::TlsArgs};
use supervision_proto::{
    common::BureauCode,
    dispatch::dispatch_service_client::DispatchServiceClient,
    registry::{CreateInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient},
};
use testkit::{Backend, Bureau, Role, TestDb, on_both_backends};
use tokio::task::JoinHandle;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

on_both_backends!(dispatch_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca);

/// Certificates for `localhost` and `127.0.0.1` from a test CA, and another CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), issuer.pem()).unwrap();
            issuer
        };
        let ours = ca("ca");
        ca("other-ca");
        for leaf in ["registry", "dispatch"] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap()
                .signed_by(&key, &ours)
                .unwrap();
            std::fs::write(dir.path().join(format!("{leaf}.crt")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{leaf}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The TLS settings of `service`, requiring client certificates from the CA.
    fn serving(&self, service: &str) -> TlsArgs {
        TlsArgs {
            tls_cert_file: Some(self.path(&format!("{service}.crt"))),
            tls_key_file: Some(self.path(&format!("{service}.key"))),
            tls_client_ca_file: Some(self.path("ca.pem")),
            health_listen: Some("127.0.0.1:0".into()),
        }
    }

    /// A TLS channel to `addr` trusting the CA, presenting `service`'s certificate.
    async fn channel(&self, addr: std::net::SocketAddr, service: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(self.path("ca.pem")).unwrap()))
            .identity(Identity::from_pem(
                std::fs::read(self.path(&format!("{service}.crt"))).unwrap(),
                std::fs::read(self.path(&format!("{service}.key"))).unwrap(),
            ))
            .domain_name("localhost");
        Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap()
    }
}

/// A service started from its settings, stopped when the test ends.
struct Started {
    addr: std::net::SocketAddr,
    db: TestDb,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Started {
    async fn stop(self) {
        self.shutdown.trigger();
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), self.task).await;
        assert!(matches!(outcome, Ok(Ok(Ok(())))), "the service stops cleanly: {outcome:?}");
    }
}

fn common(db: &TestDb, tls: TlsArgs) -> CommonArgs {
    CommonArgs { tls, ..testkit::common_args(Some(db.scratch_dir().join("clock-offset"))) }
}

async fn start_registry(backend: Backend, pki: &Pki) -> Started {
    let db = TestDb::new(backend).await;
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
        common: common(&db, pki.serving("registry")),
        reference: Default::default(),
    };
    let app = supervision_registry::App::build(&config).await.expect("the registry builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Started { addr, db, shutdown, task }
}

/// Dispatch calling the registry at `endpoint`, trusting `peer_ca`, serving (and presenting)
/// its own certificate when `own_certificate`.
async fn start_dispatch(backend: Backend, pki: &Pki, endpoint: &str, peer_ca: &Path, own_certificate: bool) -> Started {
    let db = TestDb::new(backend).await;
    let token_file = db.scratch_dir().join("service.token");
    std::fs::write(&token_file, testkit::token(Role::Service, None)).unwrap();
    let tls = if own_certificate { pki.serving("dispatch") } else { TlsArgs::default() };
    let mut common = common(&db, tls);
    common.peers.registry_endpoint = Some(endpoint.to_owned());
    common.peers.peer_ca_file = Some(peer_ca.to_owned());
    common.peers.service_token_file = Some(token_file);
    // Monday 2026-06-01 10:00 in Jiangmen: the session a week later is in time.
    let monday = Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).unwrap();
    std::fs::write(db.scratch_dir().join("clock-offset"), (monday - Utc::now()).num_seconds().to_string()).unwrap();
    let config = supervision_dispatch::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: Default::default(),
    };
    let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Started { addr, db, shutdown, task }
}

async fn written(url: &str) -> (i64, supervision_kit::audit::AuditHead) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let tasks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks").fetch_one(&pool).await.unwrap();
    let head = supervision_kit::audit::head(&pool).await.unwrap();
    pool.close().await;
    (tasks, head)
}

async fn dispatch_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend: Backend) {
    let pki = Pki::new();
    let registry = start_registry(backend, &pki).await;
    let admin_token = testkit::token(Role::CityAdmin, None);
    let mut admin = RegistryServiceClient::new(testkit::with_token(
        &pki.channel(registry.addr, "dispatch").await,
        Some(&admin_token),
    ));
    let school = admin
        .create_institution(CreateInstitutionRequest {
            request_id: "tls-school".into(),
            r#type: InstitutionType::VocationalTrainingSchool as i32,
            name: "蓬江职业培训学校".into(),
            credit_code: "91440703MA4W00001M".into(),
            parent_id: String::new(),
            county: BureauCode::Pengjiang as i32,
            address: "江门市蓬江区".into(),
            head: "李校长".into(),
        })
        .await
        .expect("the registry answers over TLS")
        .into_inner()
        .institution
        .unwrap()
        .id;
    let https = format!("https://localhost:{}", registry.addr.port());
    let operator = testkit::token(Role::CountyOperator, Some(Bureau::Pengjiang));

    // Configured: TLS both ways, the task is created with the registry's institution.
    let good = start_dispatch(backend, &pki, &https, &pki.path("ca.pem"), true).await;
    let channel = pki.channel(good.addr, "registry").await;
    let created = DispatchServiceClient::new(testkit::with_token(&channel, Some(&operator)))
        .create_task(crate::deadlines::create_task("tls-task", &school))
        .await
        .expect("dispatch reads the institution from the registry over TLS");
    assert_eq!(created.into_inner().task.unwrap().institution_id, school);
    assert_eq!(written(good.db.url()).await.0, 1);

    // Misconfigured three ways: each call is UNAVAILABLE and nothing is written.
    let plaintext = format!("http://{}", registry.addr);
    let cases: [(&str, &str, PathBuf, bool); 3] = [
        ("another CA", https.as_str(), pki.path("other-ca.pem"), true),
        ("no client certificate", https.as_str(), pki.path("ca.pem"), false),
        ("plaintext to the TLS port", plaintext.as_str(), pki.path("ca.pem"), true),
    ];
    for (what, endpoint, ca, own) in cases {
        let bad = start_dispatch(backend, &pki, endpoint, &ca, own).await;
        let before = written(bad.db.url()).await;
        let channel = if own {
            pki.channel(bad.addr, "registry").await
        } else {
            Endpoint::from_shared(format!("http://{}", bad.addr)).unwrap().connect().await.unwrap()
        };
        let refused = DispatchServiceClient::new(testkit::with_token(&channel, Some(&operator)))
            .create_task(crate::deadlines::create_task("tls-task", &school))
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::Unavailable, "{what}: {refused:?}");
        let after = written(bad.db.url()).await;
        assert_eq!(after, before, "{what}: dispatch wrote nothing");
        assert_eq!(after.0, 0, "{what}: no task");
        bad.stop().await;
    }
    good.stop().await;
    registry.stop().await;
}
