//! Authorisation: the RPC x role x scope table of `docs/rpc-roles.md`, read at start-up, and the
//! tower layer that verifies each request's token against it before any handler runs.
//!
//! The layer decides *which roles* may call a method. Scope (own bureau, own records) depends
//! on the records a request touches, so handlers check it with [`Caller::require_bureau`].
//! Health and reflection are open: Kubernetes probes carry no token.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::Status;

use crate::{
    auth::{ACTOR_HEADER, AUTHORIZATION, Caller, Role, TokenVerifier, decode_actor_header},
    clock::SharedClock,
    redact::redact,
};

/// The table as shipped: the document is the single source, so it cannot drift from the code.
pub const RPC_ROLES_DOC: &str = include_str!("../../../docs/rpc-roles.md");

/// What limits a role's reach on a method, beyond being listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any record, any bureau.
    All,
    /// Bureau-scoped roles only on their own bureau's records (checked by the handler).
    Bureau,
    /// EXPERT and APPLICANT only on their own records (checked by the handler).
    Own,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub roles: Vec<Role>,
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error)]
#[error("docs/rpc-roles.md line {line}: {problem}")]
pub struct TableError {
    pub line: usize,
    pub problem: String,
}

/// Every RPC with the roles allowed to call it.
#[derive(Debug, Clone, Default)]
pub struct AccessTable {
    rules: HashMap<String, Rule>,
}

impl AccessTable {
    /// The table shipped in `docs/rpc-roles.md`.
    pub fn shipped() -> Result<Self, TableError> {
        Self::parse(RPC_ROLES_DOC)
    }

    /// Reads rows of the form ``| `/pkg.Service/Method` | ROLE, ROLE | scope | notes |``.
    pub fn parse(doc: &str) -> Result<Self, TableError> {
        let mut rules = HashMap::new();
        for (index, line) in doc.lines().enumerate() {
            let line_no = index + 1;
            let Some(rest) = line.trim().strip_prefix("| `/") else { continue };
            let bad = |problem: String| TableError { line: line_no, problem };
            let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
            if cells.len() < 3 {
                return Err(bad("expected method, roles and scope columns".into()));
            }
            let method = format!("/{}", cells[0].trim_end_matches('`'));
            let roles = cells[1]
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| Role::from_code(r).ok_or_else(|| bad(format!("unknown role {r}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if roles.is_empty() {
                return Err(bad(format!("{method} lists no role")));
            }
            let scope = match cells[2] {
                "all" => Scope::All,
                "bureau" => Scope::Bureau,
                "own" => Scope::Own,
                other => return Err(bad(format!("unknown scope {other}"))),
            };
            if rules.insert(method.clone(), Rule { roles, scope }).is_some() {
                return Err(bad(format!("{method} is listed twice")));
            }
        }
        Ok(Self { rules })
    }

    pub fn rule(&self, method: &str) -> Option<&Rule> {
        self.rules.get(method)
    }

    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// Paths that need no token.
pub fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

#[derive(Debug)]
struct Authoriser {
    verifier: TokenVerifier,
    table: AccessTable,
    clock: SharedClock,
}

impl Authoriser {
    fn authorise(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let mut caller = self.verifier.verify(token.trim(), self.clock.now())?;
        if caller.role == Role::Service {
            caller.acting_for = headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()).and_then(decode_actor_header);
        }
        // Unlisted methods are closed: a new RPC is unreachable until the table names its roles.
        let rule = self.table.rule(path).ok_or_else(|| Status::permission_denied("no role may call this method"))?;
        if !rule.roles.contains(&caller.role) {
            return Err(Status::permission_denied(format!("role {} may not call {path}", caller.role)));
        }
        Ok(caller)
    }
}

/// A tower layer that authenticates and authorises every gRPC request.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authoriser: Arc<Authoriser>,
}

impl AuthLayer {
    pub fn new(verifier: TokenVerifier, table: AccessTable, clock: SharedClock) -> Self {
        Self { authoriser: Arc::new(Authoriser { verifier, table, clock }) }
    }

    /// The RPC roles table the layer enforces.
    pub fn table(&self) -> &AccessTable {
        &self.authoriser.table
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authoriser: self.authoriser.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authoriser: Arc<Authoriser>,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if is_open(path) {
            return Box::pin(self.inner.call(request));
        }
        match self.authoriser.authorise(path, request.headers()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                // The path and the reason may quote what the caller sent.
                tracing::info!(
                    method = %redact(path), code = ?status.code(), reason = %redact(status.message()),
                    "request refused"
                );
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// The RPC list every service's status is tracked in; the table may name nothing else.
    const API_STATUS_DOC: &str = include_str!("../../../docs/api-status.md");

    /// Every method of every `supervision.*` service in the compiled contracts, as the wire path
    /// `/package.Service/Method`.
    fn contract_methods() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(supervision_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        set.file
            .iter()
            .filter(|file| file.package().starts_with("supervision."))
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service
                        .method
                        .iter()
                        .map(move |method| format!("/{}.{}/{}", file.package(), service.name(), method.name()))
                })
            })
            .collect()
    }

    /// The first column of every row of `docs/api-status.md`'s RPC table.
    fn api_status_methods() -> BTreeSet<String> {
        API_STATUS_DOC
            .lines()
            .filter_map(|line| line.trim().strip_prefix("| `/"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(method, _)| format!("/{method}"))
            .collect()
    }

    fn shipped_methods() -> BTreeSet<String> {
        AccessTable::shipped().unwrap().methods().map(str::to_owned).collect()
    }

    #[test]
    fn the_shipped_table_parses() {
        let table = AccessTable::shipped().unwrap();
        assert!(table.rule("/supervision.registry.v1.RegistryService/CreateInstitution").is_some());
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let err = AccessTable::parse("x\n| `/a.B/C` | MAYOR | all |").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(AccessTable::parse("| `/a.B/C` | CITY_ADMIN | galaxy |").is_err());
        assert!(AccessTable::parse("| `/a.B/C` | CITY_ADMIN | all |\n| `/a.B/C` | AUDITOR | all |").is_err());
    }

    #[test]
    fn health_and_reflection_are_open_and_nothing_else() {
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!is_open("/supervision.registry.v1.RegistryService/GetInstitution"));
    }

    #[test]
    fn every_rpc_of_the_contracts_has_a_rule() {
        let contracts = contract_methods();
        assert!(!contracts.is_empty(), "the descriptor set holds no supervision service");
        let ruled = shipped_methods();
        let unruled: Vec<&String> = contracts.difference(&ruled).collect();
        assert!(unruled.is_empty(), "RPCs with no row in docs/rpc-roles.md, so closed to everyone: {unruled:#?}");
    }

    #[test]
    fn every_rule_names_an_rpc_of_the_contracts() {
        let contracts = contract_methods();
        let ruled = shipped_methods();
        let unknown: Vec<&String> = ruled.difference(&contracts).collect();
        assert!(unknown.is_empty(), "rows of docs/rpc-roles.md naming no RPC of the contracts: {unknown:#?}");
    }

    #[test]
    fn every_rule_names_an_rpc_listed_in_the_api_status() {
        let listed = api_status_methods();
        assert!(!listed.is_empty(), "docs/api-status.md lists no RPC");
        let ruled = shipped_methods();
        let unlisted: Vec<&String> = ruled.difference(&listed).collect();
        assert!(unlisted.is_empty(), "rows of docs/rpc-roles.md missing from docs/api-status.md: {unlisted:#?}");
    }
}
