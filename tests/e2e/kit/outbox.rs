//! An outbox delivery survives the callee being down and arrives exactly once after it returns.

use std::{collections::HashMap, sync::Arc};

use supervision_kit::{
    Db, Role, SharedClock,
    auth::Actor,
    clock::ManualClock,
    outbox::{self, Delivery, Relay},
};
use supervision_proto::{
    common::BureauCode,
    registry::{
        CreateInstitutionRequest, InstitutionType, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{Backend, TestDb, on_both_backends, spawn_registry_on, token};
use tonic::transport::Endpoint;

on_both_backends!(a_delivery_waits_for_the_callee_and_arrives_once, a_delivery_refused_for_good_is_parked_not_retried);

async fn a_delivery_waits_for_the_callee_and_arrives_once(backend: Backend) {
    // The caller's own database, holding the outbox.
    let caller_db = TestDb::new(backend).await;
    let db = Db::connect(caller_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let manual = ManualClock::at(chrono::Utc::now());
    let clock: SharedClock = Arc::new(manual.clone());

    // The callee's address, with nothing listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let channel = Endpoint::from_shared(format!("http://{address}")).unwrap().connect_lazy();
    let relay = Relay::new(
        db.clone(),
        clock.clone(),
        HashMap::from([("registry".to_owned(), channel)]),
        token(Role::CityAdmin, None),
    );

    let request = CreateInstitutionRequest {
        request_id: "outbox-test-1".into(),
        r#type: InstitutionType::TechnicalSchool as i32,
        name: "鹤山技工学校".into(),
        credit_code: "91110108551385082Q".into(),
        county: BureauCode::Heshan as i32,
        ..Default::default()
    };
    let actor = Actor { subject: "admin".into(), role: "CITY_ADMIN".into(), bureau: None };
    let mut tx = db.begin_write().await.unwrap();
    let delivery = Delivery {
        destination: "registry",
        method: "/supervision.registry.v1.RegistryService/CreateInstitution",
        idempotency_key: &request.request_id,
        actor: &actor,
    };
    outbox::enqueue(&mut tx, &clock, delivery.clone(), &request).await.unwrap();
    outbox::enqueue(&mut tx, &clock, delivery, &request).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 1, "enqueuing a key twice keeps one row");

    assert_eq!(relay.deliver_due().await.unwrap(), 0, "the callee is down");
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 1, "nothing is lost");

    let registry = spawn_registry_on(TestDb::new(backend).await, &address).await;
    assert_eq!(relay.deliver_due().await.unwrap(), 0, "not due again before its backoff");
    manual.advance(chrono::Duration::minutes(10));
    assert_eq!(relay.deliver_due().await.unwrap(), 1);
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 0);

    // A lost acknowledgement means a second delivery; the callee's idempotency absorbs it.
    sqlx::query("UPDATE kit_outbox SET delivered_at = NULL").execute(db.pool()).await.unwrap();
    manual.advance(chrono::Duration::minutes(10));
    assert_eq!(relay.deliver_due().await.unwrap(), 1);

    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let listed = client.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.institutions.len(), 1, "exactly once");
    assert_eq!(listed.institutions[0].name, "鹤山技工学校");
    registry.stop().await;
}

async fn a_delivery_refused_for_good_is_parked_not_retried(backend: Backend) {
    let caller_db = TestDb::new(backend).await;
    let db = Db::connect(caller_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let manual = ManualClock::at(chrono::Utc::now());
    let clock: SharedClock = Arc::new(manual.clone());
    let registry = spawn_registry_on(TestDb::new(backend).await, "127.0.0.1:0").await;
    let relay = Relay::new(
        db.clone(),
        clock.clone(),
        HashMap::from([("registry".to_owned(), registry.channel.clone())]),
        token(Role::CityAdmin, None),
    );
    // A wrong check character: the registry refuses it as INVALID_ARGUMENT, which no retry fixes.
    let request = CreateInstitutionRequest {
        request_id: "outbox-bad-1".into(),
        r#type: InstitutionType::TechnicalSchool as i32,
        name: "错误的机构".into(),
        credit_code: "91110108551385082X".into(),
        county: BureauCode::Heshan as i32,
        ..Default::default()
    };
    let actor = Actor { subject: "admin".into(), role: "CITY_ADMIN".into(), bureau: None };
    let mut tx = db.begin_write().await.unwrap();
    let delivery = Delivery {
        destination: "registry",
        method: "/supervision.registry.v1.RegistryService/CreateInstitution",
        idempotency_key: &request.request_id,
        actor: &actor,
    };
    outbox::enqueue(&mut tx, &clock, delivery, &request).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(relay.deliver_due().await.unwrap(), 0);
    assert_eq!(outbox::parked(&db).await.unwrap(), 1);
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 0, "a parked row is not backlog");
    manual.advance(chrono::Duration::hours(1));
    assert_eq!(relay.deliver_due().await.unwrap(), 0, "and it is not retried");
    registry.stop().await;
}
