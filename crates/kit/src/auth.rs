//! Identity: asymmetric (Ed25519) JWTs, the roles of D12, and who a request acts for.
//!
//! Services hold the public key only; whoever issues tokens (an operator with
//! `supctl token issue`, later the bureau's identity system) holds the private key. A SERVICE
//! caller may name the user it acts for in the `x-actor` header; the callee authorises the
//! service and records that user in its audit entries.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::Bureau;

/// The header that carries `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";
/// The binary metadata key in which a SERVICE caller names the user it acts for: a
/// `supervision.common.v1.Actor`, protobuf-encoded (gRPC base64-encodes `-bin` values).
pub const ACTOR_HEADER: &str = "supervision-actor-bin";

/// The token subject of a service's own SERVICE token: `svc:<name>` (`svc:finance`, ...). Rules
/// that trust one service only (finance reading payees in full) compare against it, so another
/// service's token cannot claim that trust by naming a user in its actor header.
pub fn service_subject(name: &str) -> String {
    format!("svc:{name}")
}

/// The roles of D12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    CityAdmin,
    CityReviewer,
    CityOperator,
    /// Scoped to one county bureau.
    CountyOperator,
    /// Scoped to one bureau (city or county).
    Finance,
    /// A bureau's finance lead, who co-approves large batches.
    FinanceLead,
    /// Reads everything, changes nothing.
    Auditor,
    /// An appointed expert acting on their own records.
    Expert,
    /// A recruitment applicant acting on their own application.
    Applicant,
    /// Another supervision service, possibly acting for a user.
    Service,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CityAdmin,
        Role::CityReviewer,
        Role::CityOperator,
        Role::CountyOperator,
        Role::Finance,
        Role::FinanceLead,
        Role::Auditor,
        Role::Expert,
        Role::Applicant,
        Role::Service,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::CityAdmin => "CITY_ADMIN",
            Role::CityReviewer => "CITY_REVIEWER",
            Role::CityOperator => "CITY_OPERATOR",
            Role::CountyOperator => "COUNTY_OPERATOR",
            Role::Finance => "FINANCE",
            Role::FinanceLead => "FINANCE_LEAD",
            Role::Auditor => "AUDITOR",
            Role::Expert => "EXPERT",
            Role::Applicant => "APPLICANT",
            Role::Service => "SERVICE",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Whether a token of this role must name a bureau, and that bureau bounds what it may touch.
    pub fn is_bureau_scoped(self) -> bool {
        matches!(self, Role::CountyOperator | Role::Finance | Role::FinanceLead)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A token's claims as they travel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_id: Option<String>,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// Not valid before this instant (seconds since the epoch), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// The user a request acts for: the caller itself, or the user a SERVICE caller names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub subject: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
}

/// Who is calling, established from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    pub bureau: Option<Bureau>,
    pub expert_id: Option<String>,
    /// For a SERVICE caller, the user it acts for, if it named one.
    pub acting_for: Option<Actor>,
}

impl Caller {
    /// The caller established by the auth layer for this request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::unauthenticated("no verified caller on this request"))
    }

    /// Allows the call only if the caller may act on `bureau`'s records: city-wide roles
    /// anywhere, bureau-scoped roles only on their own bureau (D12, D13).
    pub fn require_bureau(&self, bureau: Bureau) -> Result<(), Status> {
        if !self.role.is_bureau_scoped() || self.bureau == Some(bureau) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} of {} may not act for bureau {}",
            self.role,
            self.bureau.map(|b| b.division_code()).unwrap_or("?"),
            bureau.division_code()
        )))
    }

    /// The person the audit trail names: the user a service acts for, else the caller.
    pub fn actor(&self) -> Actor {
        self.acting_for.clone().unwrap_or_else(|| Actor {
            subject: self.subject.clone(),
            role: self.role.code().to_owned(),
            bureau: self.bureau.map(|b| b.division_code().to_owned()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

/// Tokens whose signature has been checked, remembered at most this many at once.
const VERIFIED_TOKENS_KEPT: usize = 4096;

/// Checks tokens with the issuer's public key.
///
/// A token's signature and claims are checked once and remembered (by the whole token's text,
/// so any other token, a changed byte included, is checked afresh); its validity window is
/// checked on every call. Checking an EdDSA signature was about a third of the registry's CPU
/// time per GetExpert (`docs/performance.md`, "Registry reads"), and a caller sends the same
/// token for its whole life.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    verified: Arc<Mutex<HashMap<String, Verified>>>,
    /// How many checked tokens are remembered at most ([`VERIFIED_TOKENS_KEPT`]).
    keep: usize,
}

/// What a checked token says, with its validity window.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    exp: i64,
    nbf: Option<i64>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier").field("audience", &self.validation.aud).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn from_public_pem(pem: &[u8], audience: &str, issuer: &str) -> Result<Self, KeyError> {
        let key = DecodingKey::from_ed_pem(pem)?;
        // Only EdDSA: a token claiming `none` or an HMAC algorithm is refused outright.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 30;
        Ok(Self { key, validation, verified: Arc::default(), keep: VERIFIED_TOKENS_KEPT })
    }

    /// Verifies a token at `now` and turns its claims into a [`Caller`].
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, Status> {
        let remembered = self.verified.lock().ok().and_then(|kept| kept.get(token).cloned());
        let verified = match remembered {
            Some(verified) => verified,
            None => {
                let verified = self.check(token)?;
                if let Ok(mut kept) = self.verified.lock() {
                    if kept.len() >= self.keep {
                        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
                        kept.retain(|_, v| v.exp + leeway >= now.timestamp());
                        if kept.len() >= self.keep {
                            kept.clear();
                        }
                    }
                    kept.insert(token.to_owned(), verified.clone());
                }
                verified
            }
        };
        // The window is checked against the clock the caller passes (the service's clock), so
        // tests that move the clock see tokens expire, remembered or not.
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
        if verified.exp + leeway < now.timestamp() {
            return Err(Status::unauthenticated("token expired"));
        }
        if verified.nbf.is_some_and(|nbf| nbf - leeway > now.timestamp()) {
            return Err(Status::unauthenticated("token not yet valid"));
        }
        Ok(verified.caller)
    }

    /// The signature and every claim but the validity window.
    fn check(&self, token: &str) -> Result<Verified, Status> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &validation)
            .map_err(|e| Status::unauthenticated(format!("invalid token: {e}")))?;
        let claims = data.claims;
        let role =
            Role::from_code(&claims.role).ok_or_else(|| Status::unauthenticated("token names an unknown role"))?;
        let bureau = match claims.bureau.as_deref() {
            None | Some("") => None,
            Some(code) => Some(
                Bureau::from_division_code(code)
                    .ok_or_else(|| Status::unauthenticated("token names an unknown bureau"))?,
            ),
        };
        match (role, bureau) {
            (Role::CountyOperator, Some(b)) if b.is_county() => {}
            (Role::CountyOperator, _) => return Err(Status::unauthenticated("a COUNTY_OPERATOR token needs a county")),
            (Role::Finance | Role::FinanceLead, None) => {
                return Err(Status::unauthenticated("a FINANCE token needs a bureau"));
            }
            _ => {}
        }
        if role == Role::Expert && claims.expert_id.as_deref().is_none_or(str::is_empty) {
            return Err(Status::unauthenticated("an EXPERT token needs an expert id"));
        }
        Ok(Verified {
            caller: Caller { subject: claims.sub, role, bureau, expert_id: claims.expert_id, acting_for: None },
            exp: claims.exp,
            nbf: claims.nbf,
        })
    }
}

/// Signs tokens with the issuer's private key (`supctl token issue`, the dev set-up, tests).
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    audience: String,
    issuer: String,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// What a new token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub role: Role,
    pub bureau: Option<Bureau>,
    pub expert_id: Option<String>,
    pub ttl: Duration,
}

impl TokenIssuer {
    pub fn from_private_pem(pem: &[u8], audience: &str, issuer: &str) -> Result<Self, KeyError> {
        Ok(Self { key: EncodingKey::from_ed_pem(pem)?, audience: audience.to_owned(), issuer: issuer.to_owned() })
    }

    pub fn issue(&self, request: &TokenRequest, now: DateTime<Utc>) -> Result<String, KeyError> {
        self.sign(request, now, None)
    }

    /// A token issued `now` that services refuse before `not_before` (a change of duty that
    /// starts tomorrow, say).
    pub fn issue_valid_from(
        &self,
        request: &TokenRequest,
        now: DateTime<Utc>,
        not_before: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        self.sign(request, now, Some(not_before.timestamp()))
    }

    fn sign(&self, request: &TokenRequest, now: DateTime<Utc>, nbf: Option<i64>) -> Result<String, KeyError> {
        let claims = Claims {
            sub: request.subject.clone(),
            role: request.role.code().to_owned(),
            bureau: request.bureau.map(|b| b.division_code().to_owned()),
            expert_id: request.expert_id.clone(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + i64::try_from(request.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            nbf,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)?)
    }
}

/// A new Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_key_pair() -> Result<(String, String), KeyError> {
    let seed: [u8; 32] = rand::random();
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = signing.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Encode(e.to_string()))?;
    let public =
        signing.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| KeyError::Encode(e.to_string()))?;
    Ok((private.to_string(), public))
}

impl Actor {
    pub fn to_proto(&self) -> supervision_proto::common::Actor {
        use supervision_proto::common::Role as P;
        supervision_proto::common::Actor {
            subject: self.subject.clone(),
            role: P::from_str_name(&format!("ROLE_{}", self.role)).unwrap_or(P::Unspecified) as i32,
            bureau: self.bureau.as_deref().and_then(Bureau::from_division_code).map_or(0, |b| b.to_proto() as i32),
            expert_id: String::new(),
            display_name: String::new(),
        }
    }

    pub fn from_proto(actor: &supervision_proto::common::Actor) -> Self {
        let role = supervision_proto::common::Role::try_from(actor.role)
            .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_owned())
            .unwrap_or_default();
        Self {
            subject: actor.subject.clone(),
            role,
            bureau: Bureau::from_proto(actor.bureau).map(|b| b.division_code().to_owned()),
        }
    }
}

/// The bytes of the [`ACTOR_HEADER`] for `actor`.
pub fn encode_actor(actor: &Actor) -> Vec<u8> {
    use prost::Message;
    actor.to_proto().encode_to_vec()
}

/// Reads an [`ACTOR_HEADER`] value as it travels in HTTP/2 (base64, padded or not).
pub fn decode_actor_header(value: &str) -> Option<Actor> {
    use prost::Message;
    let bytes = STANDARD_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    let actor = supervision_proto::common::Actor::decode(bytes.as_slice()).ok()?;
    (!actor.subject.is_empty()).then(|| Actor::from_proto(&actor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TokenIssuer, TokenVerifier) {
        let (private, public) = generate_key_pair().unwrap();
        (
            TokenIssuer::from_private_pem(private.as_bytes(), "supervision", "test").unwrap(),
            TokenVerifier::from_public_pem(public.as_bytes(), "supervision", "test").unwrap(),
        )
    }

    fn county_operator() -> TokenRequest {
        TokenRequest {
            subject: "op1".into(),
            role: Role::CountyOperator,
            bureau: Some(Bureau::Xinhui),
            expert_id: None,
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_token_round_trips_into_a_caller() {
        let (issuer, verifier) = pair();
        let now = Utc::now();
        let caller = verifier.verify(&issuer.issue(&county_operator(), now).unwrap(), now).unwrap();
        assert_eq!(caller.role, Role::CountyOperator);
        assert_eq!(caller.bureau, Some(Bureau::Xinhui));
        assert!(caller.require_bureau(Bureau::Xinhui).is_ok());
        assert_eq!(caller.require_bureau(Bureau::Heshan).unwrap_err().code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        let (issuer, verifier) = pair();
        let (other_issuer, _) = pair();
        let now = Utc::now();
        let token = issuer.issue(&county_operator(), now).unwrap();
        assert!(verifier.verify(&token, now + chrono::Duration::hours(2)).is_err(), "expired");
        let foreign = other_issuer.issue(&county_operator(), now).unwrap();
        assert!(verifier.verify(&foreign, now).is_err(), "signed with another key");

        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = token.split('.').nth(1).unwrap();
        assert!(verifier.verify(&format!("{header}.{payload}."), now).is_err(), "alg=none");

        let start = now + chrono::Duration::minutes(10);
        let later = issuer.issue_valid_from(&county_operator(), now, start).unwrap();
        assert_eq!(verifier.verify(&later, now).unwrap_err().message(), "token not yet valid");
        assert!(verifier.verify(&later, start).is_ok(), "valid from its start");
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_checked_again() {
        let (issuer, verifier) = pair();
        let now = Utc::now();
        let token = issuer.issue(&county_operator(), now).unwrap();
        assert!(verifier.verify(&token, now).is_ok());
        assert!(verifier.verify(&token, now).is_ok(), "remembered");
        assert_eq!(verifier.verify(&token, now + chrono::Duration::hours(2)).unwrap_err().message(), "token expired");
        // The last character of the signature changed: not the remembered token, and refused.
        let mut changed = token.clone();
        let last = changed.pop().unwrap();
        changed.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verifier.verify(&changed, now).is_err());
        // A clone shares what was remembered, and a full memory is emptied, not grown.
        let mut clone = verifier.clone();
        assert_eq!(clone.verified.lock().unwrap().len(), 1);
        clone.keep = 4;
        for n in 0..10 {
            let request = TokenRequest { subject: format!("op{n}"), ..county_operator() };
            clone.verify(&issuer.issue(&request, now).unwrap(), now).unwrap();
            assert!(verifier.verified.lock().unwrap().len() <= 4);
        }
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let (private, public) = generate_key_pair().unwrap();
        let issuer = TokenIssuer::from_private_pem(private.as_bytes(), "elsewhere", "test").unwrap();
        let verifier = TokenVerifier::from_public_pem(public.as_bytes(), "supervision", "test").unwrap();
        let now = Utc::now();
        assert!(verifier.verify(&issuer.issue(&county_operator(), now).unwrap(), now).is_err());
    }

    #[test]
    fn scoped_roles_must_name_their_scope() {
        let (issuer, verifier) = pair();
        let now = Utc::now();
        let unscoped = TokenRequest { bureau: None, ..county_operator() };
        assert!(verifier.verify(&issuer.issue(&unscoped, now).unwrap(), now).is_err());
        let city_as_county = TokenRequest { bureau: Some(Bureau::City), ..county_operator() };
        assert!(verifier.verify(&issuer.issue(&city_as_county, now).unwrap(), now).is_err());
    }

    #[test]
    fn actors_survive_the_header_encoding() {
        let actor = Actor { subject: "张三".into(), role: "CITY_ADMIN".into(), bureau: Some("440700".into()) };
        let header = STANDARD_NO_PAD.encode(encode_actor(&actor));
        assert_eq!(decode_actor_header(&header), Some(actor.clone()));
        assert_eq!(decode_actor_header(&format!("{header}==")), Some(actor));
        assert_eq!(decode_actor_header("%%%"), None);
    }
}
