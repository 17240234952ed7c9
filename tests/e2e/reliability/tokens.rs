//! Token refusals on every service: a token that is unsigned (`alg=none`), for another audience
//! or issuer, expired, not yet valid, or signed by another key is UNAUTHENTICATED on each of the
//! four services, and a valid token on the same call is not.

use std::time::Duration;

use supervision_kit::auth::{TokenIssuer, TokenRequest, generate_key_pair};
use testkit::{
    Backend, Role, RunningService, identity, on_both_backends, spawn_dispatch, spawn_finance, spawn_recruitment,
    spawn_registry,
};
use tonic::Code;

use crate::call_raw;

on_both_backends!(bad_tokens_are_refused_by_every_service);

/// The tokens to refuse, by what is wrong with them, and a valid one to compare with.
fn tokens() -> (Vec<(&'static str, String)>, String) {
    let admin = TokenRequest {
        subject: "admin".into(),
        role: Role::CityAdmin,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(600),
    };
    let now = chrono::Utc::now();
    let issuer = |audience: &str, iss: &str| {
        TokenIssuer::from_private_pem(identity::private_key_pem().as_bytes(), audience, iss).unwrap()
    };
    let ours = issuer(identity::AUDIENCE, identity::ISSUER);
    let valid = ours.issue(&admin, now).unwrap();
    let (other_private, _) = generate_key_pair().unwrap();
    let foreign = TokenIssuer::from_private_pem(other_private.as_bytes(), identity::AUDIENCE, identity::ISSUER)
        .unwrap()
        .issue(&admin, now)
        .unwrap();
    let unsigned = {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{}.", valid.split('.').nth(1).unwrap())
    };
    let bad = vec![
        ("alg=none", unsigned),
        ("wrong audience", issuer("another-system", identity::ISSUER).issue(&admin, now).unwrap()),
        ("wrong issuer", issuer(identity::AUDIENCE, "another-issuer").issue(&admin, now).unwrap()),
        ("expired", ours.issue(&admin, now - chrono::Duration::hours(2)).unwrap()),
        ("not yet valid", ours.issue_valid_from(&admin, now, now + chrono::Duration::minutes(5)).unwrap()),
        ("signed by another key", foreign),
        ("garbage", "not.a.jwt".into()),
    ];
    (bad, valid)
}

async fn bad_tokens_are_refused_by_every_service(backend: Backend) {
    let services: Vec<(&str, RunningService)> = vec![
        ("registry", spawn_registry(backend).await),
        ("recruitment", spawn_recruitment(backend).await),
        ("dispatch", spawn_dispatch(backend).await),
        ("finance", spawn_finance(backend).await),
    ];
    let (bad, valid) = tokens();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (name, service) in &services {
        // GetAuditHead: open to CITY_ADMIN on every service, legal with an empty request.
        let method = format!("/supervision.{name}.v1.{}Service/GetAuditHead", capitalised(name));
        let (code, message) = call_raw(&service.channel, &method, Vec::new(), Some(&valid)).await;
        assert_eq!(code, Code::Ok, "{method} with a valid token: {message}");
        for (what, token) in &bad {
            let (code, message) = call_raw(&service.channel, &method, Vec::new(), Some(token)).await;
            checked += 1;
            if code != Code::Unauthenticated {
                wrong.push(format!("{name}: a token {what} answers {code:?}: {message}"));
            }
        }
    }
    assert_eq!(checked, 4 * bad.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (_, service) in services {
        service.stop().await;
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}
