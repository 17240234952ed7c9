//! A checking gRPC proxy in front of one service (and the calendar and health it serves beside
//! it): every call is handed, as raw protobuf bytes, to a [`Check`], which sends it upstream in
//! its own way and answers the client. The idempotency checker (`idempotency.rs`) and the bureau
//! walk (`scope.rs`) are two such checks.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    marker::PhantomData,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use prost_reflect::MethodDescriptor;
use supervision_kit::outbox::RawCodec;
use tonic::{
    Status,
    codegen::{Body, BoxFuture, Service, StdError, http},
    metadata::MetadataMap,
    transport::Channel,
};

/// A server stream's messages as the proxy hands them on.
pub type Messages = Pin<Box<dyn tokio_stream::Stream<Item = Result<Vec<u8>, Status>> + Send>>;

/// What a proxy does with each call.
pub trait Check: Send + Sync + 'static {
    /// The RPCs by path, to tell server streams from unary calls.
    fn rpcs(&self) -> &BTreeMap<String, MethodDescriptor>;

    /// One unary call from a client: its answer.
    fn unary(
        self: Arc<Self>,
        upstream: Channel,
        path: String,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> BoxFuture<Vec<u8>, Status>;

    /// One server-streaming call; by default passed through as it comes.
    fn server_streaming(
        self: Arc<Self>,
        upstream: Channel,
        path: String,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> BoxFuture<Messages, Status> {
        Box::pin(pass_stream(upstream, path, metadata, body))
    }
}

/// Sends a server-streaming call upstream unchanged.
pub async fn pass_stream(
    upstream: Channel,
    path: String,
    metadata: MetadataMap,
    body: Vec<u8>,
) -> Result<Messages, Status> {
    let mut grpc = tonic::client::Grpc::new(upstream);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = path.parse().map_err(|_| Status::unimplemented("not a path"))?;
    let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), body);
    let stream = grpc.server_streaming(request, path, RawCodec).await?.into_inner();
    Ok(Box::pin(stream) as Messages)
}

trait Served: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! served {
    ($($marker:ident => $name:literal),+ $(,)?) => {
        $(
            struct $marker;
            impl Served for $marker {
                const NAME: &'static str = $name;
            }
        )+
    };
}

served!(
    RegistryName => "supervision.registry.v1.RegistryService",
    RecruitmentName => "supervision.recruitment.v1.RecruitmentService",
    DispatchName => "supervision.dispatch.v1.DispatchService",
    FinanceName => "supervision.finance.v1.FinanceService",
    CalendarName => "supervision.calendar.v1.CalendarService",
    HealthName => "grpc.health.v1.Health",
);

struct Proxy<N, C> {
    upstream: Channel,
    checker: Arc<C>,
    _name: PhantomData<fn() -> N>,
}

impl<N, C> Clone for Proxy<N, C> {
    fn clone(&self) -> Self {
        Self { upstream: self.upstream.clone(), checker: self.checker.clone(), _name: PhantomData }
    }
}

impl<N: Served, C> tonic::server::NamedService for Proxy<N, C> {
    const NAME: &'static str = N::NAME;
}

impl<N: Served, C: Check, B> Service<http::Request<B>> for Proxy<N, C>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let streaming = path == "/grpc.health.v1.Health/Watch"
            || self.checker.rpcs().get(&path).is_some_and(MethodDescriptor::is_server_streaming);
        let hop = Hop { upstream: self.upstream.clone(), checker: self.checker.clone(), path };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec).apply_max_message_size_config(Some(64 << 20), None);
            Ok(if streaming { grpc.server_streaming(hop, request).await } else { grpc.unary(hop, request).await })
        })
    }
}

struct Hop<C> {
    upstream: Channel,
    checker: Arc<C>,
    path: String,
}

impl<C: Check> tonic::server::UnaryService<Vec<u8>> for Hop<C> {
    type Response = Vec<u8>;
    type Future = BoxFuture<tonic::Response<Vec<u8>>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let (metadata, _, body) = request.into_parts();
        let answer = self.checker.clone().unary(self.upstream.clone(), self.path.clone(), metadata, body);
        Box::pin(async move { answer.await.map(tonic::Response::new) })
    }
}

impl<C: Check> tonic::server::ServerStreamingService<Vec<u8>> for Hop<C> {
    type Response = Vec<u8>;
    type ResponseStream = Messages;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let (metadata, _, body) = request.into_parts();
        let answer = self.checker.clone().server_streaming(self.upstream.clone(), self.path.clone(), metadata, body);
        Box::pin(async move { answer.await.map(tonic::Response::new) })
    }
}

/// A proxy with `checker` in front of `upstream` (any of the services, the calendar and health),
/// serving until the process ends: its address and a channel to it.
pub async fn serve<C: Check>(upstream: &Channel, checker: &Arc<C>) -> (SocketAddr, Channel) {
    fn hop<N: Served, C: Check>(upstream: &Channel, checker: &Arc<C>) -> Proxy<N, C> {
        Proxy { upstream: upstream.clone(), checker: checker.clone(), _name: PhantomData }
    }
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .add_service(hop::<RegistryName, C>(upstream, checker))
        .add_service(hop::<RecruitmentName, C>(upstream, checker))
        .add_service(hop::<DispatchName, C>(upstream, checker))
        .add_service(hop::<FinanceName, C>(upstream, checker))
        .add_service(hop::<CalendarName, C>(upstream, checker))
        .add_service(hop::<HealthName, C>(upstream, checker));
    tokio::spawn(router.serve_with_incoming(incoming));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    (addr, channel)
}
