//! An outbox delivery survives the callee being down and arrives exactly once after it returns;
//! the rows of a relay that died mid-delivery are delivered, once, by another relay as soon as
//! the short lease runs out.

use std::{collections::HashMap, sync::Arc, time::Duration};

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
use testkit::{Backend, TestDb, on_both_backends, scenario::credit_code, spawn_registry_on, token};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Endpoint;

on_both_backends!(
    a_delivery_waits_for_the_callee_and_arrives_once,
    a_delivery_refused_for_good_is_parked_not_retried,
    rows_of_a_relay_that_died_mid_delivery_go_to_another_relay_within_the_short_lease_once,
);

/// The caller's own database, holding the outbox (with the test database it lives in), and its
/// manual clock.
async fn caller(backend: Backend) -> (TestDb, Db, ManualClock, SharedClock) {
    let caller_db = TestDb::new(backend).await;
    let db = Db::connect(caller_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let manual = ManualClock::at(chrono::Utc::now());
    let clock: SharedClock = Arc::new(manual.clone());
    (caller_db, db, manual, clock)
}

async fn a_delivery_waits_for_the_callee_and_arrives_once(backend: Backend) {
    let (_caller_db, db, manual, clock) = caller(backend).await;

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
    let (_caller_db, db, manual, clock) = caller(backend).await;
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

/// Copies what `from` sends to `to`, or throws it away when `to` is `None`, until `from` closes.
async fn pump(from: Arc<TcpStream>, to: Option<Arc<TcpStream>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let Some(to) = &to else { continue };
        let mut sent = 0;
        while sent < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

/// A TCP proxy to `upstream` that passes the caller's bytes on and swallows every answer: a call
/// through it has its effect at the callee, and the caller never learns of it (as a relay killed
/// after its request went out and before the answer came back).
async fn answer_swallowing_proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((caller, _)) = listener.accept().await {
            let Ok(callee) = TcpStream::connect(&upstream).await else { return };
            let (caller, callee) = (Arc::new(caller), Arc::new(callee));
            tokio::spawn(pump(caller.clone(), Some(callee.clone())));
            tokio::spawn(pump(callee, None));
        }
    });
    address
}

async fn rows_of_a_relay_that_died_mid_delivery_go_to_another_relay_within_the_short_lease_once(backend: Backend) {
    let (_caller_db, db, manual, clock) = caller(backend).await;
    let registry = spawn_registry_on(TestDb::new(backend).await, "127.0.0.1:0").await;
    let address = registry.addr.to_string();
    let relay_to = |address: &str| {
        let channel = Endpoint::from_shared(format!("http://{address}")).unwrap().connect_lazy();
        Relay::new(
            db.clone(),
            clock.clone(),
            HashMap::from([("registry".to_owned(), channel)]),
            token(Role::CityAdmin, None),
        )
    };
    // The relay that dies reaches the registry through a proxy that never lets an answer back.
    let dying = relay_to(&answer_swallowing_proxy(address.clone()).await);
    let other = relay_to(&address);

    let actor = Actor { subject: "admin".into(), role: "CITY_ADMIN".into(), bureau: None };
    let requests: Vec<CreateInstitutionRequest> = (0..2)
        .map(|n| CreateInstitutionRequest {
            request_id: format!("outbox-lease-{n}"),
            r#type: InstitutionType::TechnicalSchool as i32,
            name: format!("鹤山技工学校第{n}分校"),
            credit_code: credit_code(900 + n),
            county: BureauCode::Heshan as i32,
            ..Default::default()
        })
        .collect();
    let mut tx = db.begin_write().await.unwrap();
    for request in &requests {
        let delivery = Delivery {
            destination: "registry",
            method: "/supervision.registry.v1.RegistryService/CreateInstitution",
            idempotency_key: &request.request_id,
            actor: &actor,
        };
        outbox::enqueue(&mut tx, &clock, delivery, request).await.unwrap();
    }
    tx.commit().await.unwrap();

    // The first relay claims both rows and delivers the first; the registry makes the
    // institution, the answer never arrives, and the relay is killed waiting for it.
    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let pass = tokio::spawn(async move { dying.deliver_due().await });
    let mut made = 0;
    for _ in 0..200 {
        made =
            client.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner().institutions.len();
        if made > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(made, 1, "the dying relay's first delivery reached the registry");
    pass.abort();
    assert!(pass.await.unwrap_err().is_cancelled(), "the relay died mid-delivery");
    let claims = || async {
        sqlx::query_as::<_, (i64, Option<String>)>("SELECT attempts, delivered_at FROM kit_outbox ORDER BY id")
            .fetch_all(db.pool())
            .await
            .unwrap()
    };
    assert_eq!(claims().await, vec![(1, None), (1, None)], "both rows claimed by the dead relay, neither settled");

    // Within the lease the other relay leaves them alone; once the 30 s lease is past, it
    // delivers both (not ten minutes later).
    assert_eq!(other.deliver_due().await.unwrap(), 0, "the rows are still leased");
    manual.advance(chrono::Duration::seconds(29));
    assert_eq!(other.deliver_due().await.unwrap(), 0, "the rows are still leased 29 s on");
    manual.advance(chrono::Duration::seconds(2));
    assert_eq!(other.deliver_due().await.unwrap(), 2, "the lease ran out 30 s on: both rows delivered");
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 0);
    let settled = claims().await;
    assert!(settled.iter().all(|(attempts, delivered)| *attempts == 2 && delivered.is_some()), "{settled:?}");
    assert_eq!(other.deliver_due().await.unwrap(), 0, "nothing left to deliver");

    // Exactly once at the callee: the first row's second delivery was replayed.
    let listed = client.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner();
    let mut names: Vec<String> = listed.institutions.into_iter().map(|i| i.name).collect();
    names.sort();
    assert_eq!(names, vec!["鹤山技工学校第0分校".to_owned(), "鹤山技工学校第1分校".to_owned()]);
    registry.stop().await;
}
