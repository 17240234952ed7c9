//! One token-signing key pair per test process, tokens for any role, and clients that send them.

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use chrono::Utc;
use supervision_kit::{
    Bureau, Role,
    auth::{ACTOR_HEADER, Actor, TokenIssuer, TokenRequest, encode_actor, generate_key_pair},
};
use tonic::{
    metadata::MetadataValue, service::Interceptor, service::interceptor::InterceptedService, transport::Channel,
};

pub const AUDIENCE: &str = "supervision";
/// The expert id in EXPERT tokens from [`token`].
pub const EXPERT_ID: &str = "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f";
pub const ISSUER: &str = "supervision";

#[derive(Debug)]
struct TestKeys {
    issuer: TokenIssuer,
    private_pem: String,
    public_key_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (private_pem, public_pem) = generate_key_pair().expect("a key pair");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let public_key_file = dir.path().join("token-public.pem");
        std::fs::write(&public_key_file, public_pem).expect("the public key is written");
        let issuer = TokenIssuer::from_private_pem(private_pem.as_bytes(), AUDIENCE, ISSUER).expect("a valid key");
        TestKeys { issuer, private_pem, public_key_file, _dir: dir }
    })
}

/// The PEM file services under test verify tokens with.
pub fn public_key_file() -> PathBuf {
    keys().public_key_file.clone()
}

/// The private key, for tests that sign tokens of their own making.
pub fn private_key_pem() -> String {
    keys().private_pem.clone()
}

/// A valid one-hour token for `role` (with `bureau` where the role is scoped).
pub fn token(role: Role, bureau: Option<Bureau>) -> String {
    token_for(TokenRequest {
        subject: format!("{}-user", role.code().to_lowercase()),
        role,
        bureau,
        expert_id: (role == Role::Expert).then(|| EXPERT_ID.to_owned()),
        ttl: Duration::from_secs(3600),
    })
}

/// A valid one-hour EXPERT token for `expert_id`.
pub fn expert_token(expert_id: &str) -> String {
    token_for(TokenRequest {
        subject: format!("expert-{expert_id}"),
        role: Role::Expert,
        bureau: None,
        expert_id: Some(expert_id.to_owned()),
        ttl: Duration::from_secs(3600),
    })
}

pub fn token_for(request: TokenRequest) -> String {
    keys().issuer.issue(&request, Utc::now()).expect("a token")
}

/// Adds `authorization: Bearer <token>` to every request, and for a SERVICE caller acting for a
/// user, that user in `supervision-actor-bin`.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>, Option<Vec<u8>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        if let Some(actor) = &self.1 {
            request.metadata_mut().insert_bin(ACTOR_HEADER, tonic::metadata::MetadataValue::from_bytes(actor));
        }
        Ok(request)
    }
}

pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// `channel` sending `token` (or no token at all for `None`).
pub fn with_token(channel: &Channel, token: Option<&str>) -> AuthedChannel {
    let value = token.map(|t| format!("Bearer {t}").parse().expect("an ASCII token"));
    InterceptedService::new(channel.clone(), Bearer(value, None))
}

/// `channel` sending a SERVICE token of `service` that acts for `actor` (a user of `role`, with
/// `bureau` where the role is scoped), as another service of the system calls.
pub fn service_acting_for(channel: &Channel, service: &str, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
    let token = token_for(TokenRequest {
        subject: supervision_kit::auth::service_subject(service),
        role: Role::Service,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(3600),
    });
    let actor = Actor {
        subject: format!("{}-user", role.code().to_lowercase()),
        role: role.code().to_owned(),
        bureau: bureau.map(|b| b.division_code().to_owned()),
    };
    let value = format!("Bearer {token}").parse().expect("an ASCII token");
    InterceptedService::new(channel.clone(), Bearer(Some(value), Some(encode_actor(&actor))))
}
