//! The contracts' status is honest: every RPC that `docs/api-status.md` calls implemented
//! answers something other than UNIMPLEMENTED, and every other RPC answers exactly UNIMPLEMENTED
//! (the only stub the project allows), when called by a role the RPC roles table admits.

use std::collections::HashMap;

use supervision_kit::{Bureau, Role, access::AccessTable, outbox::RawCodec};
use testkit::{Backend, RunningService, spawn_dispatch, spawn_finance, spawn_recruitment, spawn_registry, token};
use tonic::{Code, transport::Channel};

const API_STATUS: &str = include_str!("../../../docs/api-status.md");

/// (method, implemented) for every row.
fn status_rows() -> Vec<(String, bool)> {
    API_STATUS
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("| `/")?;
            let (method, rest) = rest.split_once('`')?;
            let status = rest.split(" | ").nth(2)?.trim();
            Some((format!("/{method}"), status == "implemented"))
        })
        .collect()
}

async fn call_empty(channel: &Channel, method: &str, role: Role) -> Code {
    call_raw(channel, method, Some(role)).await.0
}

/// Calls `method` with an empty request message, as `role` (a county operator of Xinhui, finance
/// staff of the city bureau) or with no token at all; answers the code and the message.
async fn call_raw(channel: &Channel, method: &str, role: Option<Role>) -> (Code, String) {
    let mut request = tonic::Request::new(Vec::new());
    if let Some(role) = role {
        let bureau = match role {
            Role::CountyOperator => Some(Bureau::Xinhui),
            Role::Finance | Role::FinanceLead => Some(Bureau::City),
            _ => None,
        };
        request.metadata_mut().insert("authorization", format!("Bearer {}", token(role, bureau)).parse().unwrap());
    }
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = method.parse().unwrap();
    let outcome: Result<tonic::Response<Vec<u8>>, tonic::Status> = grpc.unary(request, path, RawCodec).await;
    match outcome {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

async fn spawn_all() -> Vec<(&'static str, RunningService)> {
    vec![
        ("supervision.registry.v1.RegistryService", spawn_registry(Backend::Sqlite).await),
        ("supervision.recruitment.v1.RecruitmentService", spawn_recruitment(Backend::Sqlite).await),
        ("supervision.dispatch.v1.DispatchService", spawn_dispatch(Backend::Sqlite).await),
        ("supervision.finance.v1.FinanceService", spawn_finance(Backend::Sqlite).await),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_as_docs_api_status_says() {
    let services = spawn_all().await;
    let mut by_name: HashMap<&str, &RunningService> = services.iter().map(|(n, s)| (*n, s)).collect();
    // Every service serves the calendar and policy reference; check it on one of them.
    by_name.insert("supervision.calendar.v1.CalendarService", &services[2].1);
    let table = AccessTable::shipped().unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (method, implemented) in status_rows() {
        let service_name = method.trim_start_matches('/').split('/').next().unwrap();
        let Some(service) = by_name.get(service_name) else { continue };
        let role = table.rule(&method).unwrap_or_else(|| panic!("{method} has no roles")).roles[0];
        let code = call_empty(&service.channel, &method, role).await;
        checked += 1;
        match (implemented, code) {
            (true, Code::Unimplemented) => {
                wrong.push(format!("{method} is listed as implemented but answers UNIMPLEMENTED"))
            }
            (false, c) if c != Code::Unimplemented => {
                wrong.push(format!("{method} is listed as not implemented but answers {c:?}"))
            }
            _ => {}
        }
    }
    assert!(checked > 150, "only {checked} RPCs checked");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (_, service) in services {
        service.stop().await;
    }
}

/// The access walk (issue 11): every RPC of every service, called by every role of D12 and with
/// no token. A role the RPC roles table does not list is refused by the authorisation layer
/// before any handler runs; a listed role is never refused by the layer (a handler may still
/// refuse it for scope, with its own message); no token is UNAUTHENTICATED everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_admits_and_refuses_each_role_as_docs_rpc_roles_says() {
    let services = spawn_all().await;
    let mut by_name: HashMap<&str, &RunningService> = services.iter().map(|(n, s)| (*n, s)).collect();
    by_name.insert("supervision.calendar.v1.CalendarService", &services[0].1);
    let table = AccessTable::shipped().unwrap();
    let mut wrong = Vec::new();
    let (mut refused, mut admitted) = (0, 0);
    for (method, _) in status_rows() {
        let service_name = method.trim_start_matches('/').split('/').next().unwrap();
        let Some(service) = by_name.get(service_name) else { continue };
        let rule = table.rule(&method).unwrap_or_else(|| panic!("{method} has no roles"));
        let (code, message) = call_raw(&service.channel, &method, None).await;
        if code != Code::Unauthenticated {
            wrong.push(format!("{method} without a token answers {code:?}: {message}"));
        }
        for role in Role::ALL {
            let (code, message) = call_raw(&service.channel, &method, Some(role)).await;
            let refused_by_layer = code == Code::PermissionDenied && message.starts_with("role ");
            if rule.roles.contains(&role) {
                admitted += 1;
                if refused_by_layer || code == Code::Unauthenticated {
                    wrong.push(format!("{method} is open to {role:?} in the table but answers {code:?}: {message}"));
                }
            } else {
                refused += 1;
                if !refused_by_layer {
                    wrong.push(format!("{method} is closed to {role:?} in the table but answers {code:?}: {message}"));
                }
            }
        }
    }
    assert!(refused > 500 && admitted > 300, "walked only {refused} refusals and {admitted} admissions");
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
    for (_, service) in services {
        service.stop().await;
    }
}

mod bad_input;

/// Bad input over every RPC on both backends: see `bad_input.rs`.
mod bad_input_walk {
    use testkit::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_every_rpc_refuses_bad_input_clearly_and_changes_nothing() {
        super::bad_input::every_rpc_refuses_bad_input_clearly_and_changes_nothing(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_every_rpc_refuses_bad_input_clearly_and_changes_nothing() {
        super::bad_input::every_rpc_refuses_bad_input_clearly_and_changes_nothing(Backend::Postgres).await;
    }
}
