//! The baselines measured in the same run as the scenarios, so that results are ratios that hold
//! on a noisy machine:
//!
//! - the same single-row read through sqlx without our layers: `SELECT * FROM experts WHERE
//!   id = $1` on the registry's own database, through a pool opened exactly as the services open
//!   theirs (`supervision_kit::Db::connect`: the same pool size, SQLite pragmas and drivers);
//! - a bare tonic server answering the registry's GetExpert and ListExperts with a fixed message
//!   (the real service's answer, captured once), through the same generated client: the cost of
//!   gRPC and HTTP/2 alone, without authentication, idempotency, storage or conversion.

use std::{
    convert::Infallible,
    marker::PhantomData,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use sqlx::Row;
use supervision_kit::Db;
use supervision_proto::registry::{GetExpertRequest, GetExpertResponse, ListExpertsRequest, ListExpertsResponse};
use tonic::{Status, server::UnaryService};

/// The registry's database opened as the registry opens it.
pub async fn open_registry_db(url: &str) -> anyhow::Result<Db> {
    Ok(Db::connect(url, &supervision_registry::app::MIGRATIONS).await?)
}

/// One expert row by id, every column read.
pub async fn select_expert(db: &Db, id: &str) -> Result<(), Status> {
    let row = sqlx::query("SELECT * FROM experts WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    for i in 0..row.len() {
        // Text and integer columns alike, as a store function would decode them.
        let text: Result<String, _> = row.try_get(i);
        if text.is_err() {
            let _: i64 = row.try_get(i).map_err(|e| Status::internal(e.to_string()))?;
        }
    }
    Ok(())
}

/// The bare server's answers.
#[derive(Debug, Clone)]
pub struct Bare {
    get: Arc<GetExpertResponse>,
    list: Arc<ListExpertsResponse>,
}

impl tonic::server::NamedService for Bare {
    const NAME: &'static str = "supervision.registry.v1.RegistryService";
}

impl tower::Service<http::Request<tonic::body::Body>> for Bare {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let answer = match request.uri().path() {
                "/supervision.registry.v1.RegistryService/GetExpert" => {
                    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                    grpc.unary(Fixed::<GetExpertRequest, _>(this.get, PhantomData), request).await
                }
                "/supervision.registry.v1.RegistryService/ListExperts" => {
                    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                    grpc.unary(Fixed::<ListExpertsRequest, _>(this.list, PhantomData), request).await
                }
                _ => Status::unimplemented("the bare server answers GetExpert and ListExperts only").into_http(),
            };
            Ok(answer)
        })
    }
}

/// Answers every request with the same message.
struct Fixed<Req, Resp>(Arc<Resp>, PhantomData<fn(Req)>);

impl<Req: Send + 'static, Resp: Clone + Send + Sync + 'static> UnaryService<Req> for Fixed<Req, Resp> {
    type Response = Resp;
    type Future = std::future::Ready<Result<tonic::Response<Resp>, Status>>;

    fn call(&mut self, _request: tonic::Request<Req>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new((*self.0).clone())))
    }
}

/// Serves `get` and `list` on a free local port until the process ends. With `nodelay`, each
/// accepted connection gets TCP_NODELAY; without it, connections are accepted as the kit's
/// bootstrap accepts them today (a `TcpListenerStream`, Nagle's algorithm on).
pub async fn serve_bare(
    get: GetExpertResponse,
    list: ListExpertsResponse,
    nodelay: bool,
) -> anyhow::Result<SocketAddr> {
    use tokio_stream::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let bare = Bare { get: Arc::new(get), list: Arc::new(list) };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |stream| {
        if nodelay && let Ok(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        stream
    });
    tokio::spawn(tonic::transport::Server::builder().add_service(bare).serve_with_incoming(incoming));
    Ok(addr)
}
