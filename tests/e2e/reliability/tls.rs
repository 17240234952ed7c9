//! TLS between services, by configuration only (issue 11, item 6): the registry serves TLS and
//! requires client certificates from its CA (`TLS_CERT_FILE`, `TLS_KEY_FILE`,
//! `TLS_CLIENT_CA_FILE`), and its callers reach it at an `https://` endpoint
//! (`REGISTRY_ENDPOINT`), verifying it with `PEER_CA_FILE` and presenting their own certificate
//! (their `TLS_CERT_FILE`). Both callers that ask the registry before they write are proved:
//!
//! - dispatch's CreateTask, which reads the institution from the registry;
//! - finance's RecordSessions (a revision as dispatch's outbox delivers it), which asks the
//!   registry whether the expert was a civil servant on each work date.
//!
//! For each, on both backends:
//!
//! - Configured so, the call succeeds (a task with the registry's institution; fee lines for the
//!   registry's expert).
//! - A caller whose `PEER_CA_FILE` is another CA refuses the registry's certificate: the call is
//!   UNAVAILABLE and the caller wrote nothing (no row in its table, no idempotency key, its audit
//!   chain where it was).
//! - A caller with the right CA but no certificate of its own is refused by the registry's mutual
//!   TLS: UNAVAILABLE, nothing written.
//! - A caller calling the TLS port in plaintext (`http://`) fails the same way.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use supervision_kit::{Shutdown, app::CommonArgs, config::TlsArgs, vocab::new_prefixed_id};
use supervision_proto::{
    common::{
        BureauCode, CivilServantStatus, ContactDetails, Date, Evidence, ExpertCategory, ExpertKind, FundSource,
        HalfDay, IdentityDocument, IdentityDocumentType, Locality, TimeOfDay, locality::Place,
    },
    dispatch::dispatch_service_client::DispatchServiceClient,
    finance::{RecordSessionsRequest, SessionWorked, finance_service_client::FinanceServiceClient},
    registry::{
        CategoryHolding, CreateExpertRequest, CreateInstitutionRequest, ExpertProfile, InstitutionType,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, TestDb, on_both_backends, service_acting_for};
use tokio::task::JoinHandle;
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

on_both_backends!(
    dispatch_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca,
    finance_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca,
);

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
        for leaf in ["registry", "dispatch", "finance"] {
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
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common: common(&db, pki.serving("registry")),
        reference: Default::default(),
    };
    let app = supervision_registry::App::build(&config).await.expect("the registry builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Started { addr, db, shutdown, task }
}

/// A service that asks the registry before it writes.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// CreateTask reads the institution.
    Dispatch,
    /// RecordSessions asks the expert's civil-servant status on each work date.
    Finance,
}

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Self::Dispatch => "dispatch",
            Self::Finance => "finance",
        }
    }

    /// The table its call writes.
    fn table(self) -> &'static str {
        match self {
            Self::Dispatch => "tasks",
            Self::Finance => "fee_lines",
        }
    }

    /// What the call needs from the registry, created there over TLS: an institution for
    /// dispatch, an expert for finance. Answers its id.
    async fn prepare(self, registry: &mut RegistryServiceClient<AuthedChannel>) -> String {
        match self {
            Self::Dispatch => {
                registry
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
                    .id
            }
            Self::Finance => {
                registry
                    .create_expert(expert_request())
                    .await
                    .expect("the registry answers over TLS")
                    .into_inner()
                    .expert
                    .unwrap()
                    .id
            }
        }
    }

    /// The caller's command that asks the registry about `held` (what [`Caller::prepare`]
    /// answered), sent at `channel`; answers how many rows it says it wrote.
    async fn call(self, channel: &Channel, held: &str) -> Result<i64, Status> {
        match self {
            Self::Dispatch => {
                let operator = testkit::token(Role::CountyOperator, Some(Bureau::Pengjiang));
                let created = DispatchServiceClient::new(testkit::with_token(channel, Some(&operator)))
                    .create_task(crate::deadlines::create_task("tls-task", held))
                    .await?;
                assert_eq!(created.into_inner().task.unwrap().institution_id, held, "the registry's institution");
                Ok(1)
            }
            Self::Finance => {
                // As dispatch's outbox delivers a revision: its SERVICE token acting for the operator.
                let outbox = service_acting_for(channel, "dispatch", Role::CountyOperator, Some(Bureau::Xinhui));
                let recorded = FinanceServiceClient::new(outbox).record_sessions(revision(held)).await?.into_inner();
                assert!(recorded.applied, "{recorded:?}");
                assert!(!recorded.lines.is_empty(), "{recorded:?}");
                for line in &recorded.lines {
                    assert_eq!(line.expert_id, held, "{line:?}");
                }
                let paid: i64 = recorded.lines.iter().map(|l| l.amount.unwrap().fen).sum();
                assert!(paid > 0, "not a civil servant, per the registry: paid ({recorded:?})");
                Ok(i64::try_from(recorded.lines.len()).unwrap())
            }
        }
    }
}

/// An expert who is not a civil servant.
fn expert_request() -> CreateExpertRequest {
    let person = crate::scenario::person(1);
    CreateExpertRequest {
        request_id: "tls-expert".into(),
        profile: Some(ExpertProfile {
            kind: ExpertKind::Individual as i32,
            name: "李明".into(),
            identity: Some(IdentityDocument {
                r#type: IdentityDocumentType::ResidentIdCard as i32,
                number: person.id_number,
                issuing_country: String::new(),
                masked: false,
            }),
            locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
            contact: Some(ContactDetails { mobile: person.mobile, ..Default::default() }),
            categories: vec![CategoryHolding {
                category: ExpertCategory::Technician as i32,
                evidence: Some(Evidence { description: "技师证".into(), documents: vec![] }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        civil_servant_status: CivilServantStatus::None as i32,
        civil_servant_since: Some(Date { year: 2022, month: 3, day: 1 }),
        existing_appointment: None,
    }
}

/// Revision 1 of an assignment of `expert`: 90 minutes on the morning of Thursday 2026-04-16.
fn revision(expert: &str) -> RecordSessionsRequest {
    let assignment = new_prefixed_id("asg_");
    RecordSessionsRequest {
        request_id: format!("{assignment}:1"),
        assignment_id: assignment,
        revision: 1,
        task_id: new_prefixed_id("tsk_"),
        task_number: "JM-2026-0042".into(),
        expert_id: expert.to_owned(),
        paying_bureau: BureauCode::Xinhui as i32,
        fund_source: FundSource::CityCountyEmployment as i32,
        sessions: vec![SessionWorked {
            task_session_id: "ses-1".into(),
            date: Some(Date { year: 2026, month: 4, day: 16 }),
            half_day: HalfDay::Am as i32,
            start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
            minutes: 90,
        }],
        voided: false,
        void_reason: String::new(),
        event_time: Some(prost_types::Timestamp { seconds: 1_775_000_000, nanos: 0 }),
    }
}

/// `caller` calling the registry at `endpoint`, trusting `peer_ca`, serving (and presenting)
/// its own certificate when `own_certificate`, configured by its settings alone.
async fn start_caller(
    caller: Caller,
    backend: Backend,
    pki: &Pki,
    endpoint: &str,
    peer_ca: &Path,
    own_certificate: bool,
) -> Started {
    let db = TestDb::new(backend).await;
    let token_file = db.scratch_dir().join("service.token");
    std::fs::write(&token_file, testkit::token(Role::Service, None)).unwrap();
    let tls = if own_certificate { pki.serving(caller.name()) } else { TlsArgs::default() };
    let mut common = common(&db, tls);
    common.peers.registry_endpoint = Some(endpoint.to_owned());
    common.peers.peer_ca_file = Some(peer_ca.to_owned());
    common.peers.service_token_file = Some(token_file);
    let listen = "127.0.0.1:0".to_owned();
    let database_url = db.url().to_owned();
    let shutdown = Shutdown::new();
    let (addr, task) = match caller {
        Caller::Dispatch => {
            // Monday 2026-06-01 10:00 in Jiangmen: the session a week later is in time.
            let monday = Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).unwrap();
            std::fs::write(db.scratch_dir().join("clock-offset"), (monday - Utc::now()).num_seconds().to_string())
                .unwrap();
            let config = supervision_dispatch::Config { listen, database_url, common, reference: Default::default() };
            let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
            (app.local_addr(), tokio::spawn(app.run_until_stopped(shutdown.clone())))
        }
        Caller::Finance => {
            let config = supervision_finance::Config { listen, database_url, common, reference: Default::default() };
            let app = supervision_finance::App::build(&config).await.expect("finance builds");
            (app.local_addr(), tokio::spawn(app.run_until_stopped(shutdown.clone())))
        }
    };
    Started { addr, db, shutdown, task }
}

/// What a caller holds: rows of `table`, idempotency keys, and its audit chain's head.
async fn written(url: &str, table: &str) -> (i64, i64, supervision_kit::audit::AuditHead) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let count = |table: &str| sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")));
    let rows: i64 = count(table).fetch_one(&pool).await.unwrap();
    let keys: i64 = count("kit_idempotency_keys").fetch_one(&pool).await.unwrap();
    let head = supervision_kit::audit::head(&pool).await.unwrap();
    pool.close().await;
    (rows, keys, head)
}

async fn dispatch_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend: Backend) {
    calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend, Caller::Dispatch).await;
}

async fn finance_calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend: Backend) {
    calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend, Caller::Finance).await;
}

async fn calls_the_registry_over_mutual_tls_and_refuses_a_wrong_ca(backend: Backend, caller: Caller) {
    let pki = Pki::new();
    let registry = start_registry(backend, &pki).await;
    let admin_token = testkit::token(Role::CityAdmin, None);
    let mut admin = RegistryServiceClient::new(testkit::with_token(
        &pki.channel(registry.addr, caller.name()).await,
        Some(&admin_token),
    ));
    let held = caller.prepare(&mut admin).await;
    let https = format!("https://localhost:{}", registry.addr.port());
    let name = caller.name();

    // Configured: TLS both ways, the call asks the registry and writes.
    let good = start_caller(caller, backend, &pki, &https, &pki.path("ca.pem"), true).await;
    let channel = pki.channel(good.addr, "registry").await;
    let rows =
        caller.call(&channel, &held).await.unwrap_or_else(|e| panic!("{name} asks the registry over TLS: {e:?}"));
    let (stored, keys, _) = written(good.db.url(), caller.table()).await;
    assert_eq!((stored, keys), (rows, 1), "{name} wrote its rows and the command's key");

    // Misconfigured three ways: each call is UNAVAILABLE and nothing is written.
    let plaintext = format!("http://{}", registry.addr);
    let cases: [(&str, &str, PathBuf, bool); 3] = [
        ("another CA", https.as_str(), pki.path("other-ca.pem"), true),
        ("no client certificate", https.as_str(), pki.path("ca.pem"), false),
        ("plaintext to the TLS port", plaintext.as_str(), pki.path("ca.pem"), true),
    ];
    for (what, endpoint, ca, own) in cases {
        let bad = start_caller(caller, backend, &pki, endpoint, &ca, own).await;
        let before = written(bad.db.url(), caller.table()).await;
        let channel = if own {
            pki.channel(bad.addr, "registry").await
        } else {
            Endpoint::from_shared(format!("http://{}", bad.addr)).unwrap().connect().await.unwrap()
        };
        let refused = caller.call(&channel, &held).await.expect_err(what);
        assert_eq!(refused.code(), Code::Unavailable, "{name}, {what}: {refused:?}");
        let after = written(bad.db.url(), caller.table()).await;
        assert_eq!(after, before, "{name}, {what}: nothing written");
        assert_eq!((after.0, after.1), (0, 0), "{name}, {what}: no row, no idempotency key");
        bad.stop().await;
    }
    good.stop().await;
    registry.stop().await;
}
