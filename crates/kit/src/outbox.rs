//! The outbox: calls to other services written in the same transaction as the change that
//! causes them, and a relay that delivers each until the callee acknowledges.
//!
//! Each row is a complete unary gRPC request (method path and encoded message) with the
//! callee's idempotency key inside it, so redelivery after a crash or a lost answer has one
//! effect. The relay leases due rows by pushing their next attempt into the future in a short
//! transaction, delivers outside any transaction, then marks them delivered or reschedules
//! them with exponential backoff and jitter; several replicas may run relays side by side. The
//! lease is short ([`LEASE`]) and renewed row by row while a batch is delivered, so the rows of
//! a relay that died mid-delivery are delivered by another (or the restarted) relay half a
//! minute later, not ten.
//!
//! The trace context of the change that enqueued a row is stored with it, and each delivery is a
//! span in that trace whose context goes with the call: one trace runs from the cause, through
//! the outbox, into the callee, however much later the delivery happens.

use std::{collections::HashMap, time::Duration};

use bytes::{Buf, BufMut};
use prost::Message;
use sqlx::{Any, Row, Transaction};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    Db, SharedClock, Shutdown,
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    metrics::{Counter, Metrics},
    observe::code_name,
    storage::format_instant,
    telemetry,
};

/// The longest a relay waits between attempts at one row.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a leased row is left alone by other relays while one delivers it: what a relay
/// killed mid-delivery (a crash, SIGKILL, a node lost) delays its rows by, since nothing gives
/// its leases up.
///
/// Short, and renewed: a pass claims up to [`BATCH`] rows for `LEASE`, then renews each row's
/// lease for another `LEASE` right before delivering it, so the lease only has to cover one
/// delivery, which the relay itself cuts off after [`DELIVERY_TIMEOUT`] (connecting included),
/// a third of it. The renewal is fenced by the attempt count: a row whose lease ran out while
/// earlier rows of the batch were slow, and that another relay claimed meanwhile, is left to
/// that relay instead of being delivered twice.
///
/// The lease only saves work; it does not guard against double effects. A relay stalled past
/// its lease (a long pause, a service clock running fast in tests) may deliver a row another
/// relay delivers too: every delivery carries the callee's idempotency key, so the callee replays
/// the second one, and every outcome write is fenced by the attempt count, so only the latest
/// claim's outcome is recorded.
const LEASE: Duration = Duration::from_secs(30);
/// The deadline of one delivery, connecting included (sent to the callee as `grpc-timeout` and
/// enforced here too).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per pass. Each row's lease is renewed right before its delivery (see [`LEASE`]), so the
/// length of a pass (at most BATCH x DELIVERY_TIMEOUT) is not bounded by the lease.
const BATCH: i64 = 16;

/// A call to make later.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// The callee service (`registry`, `recruitment`, `dispatch`, `finance`).
    pub destination: &'a str,
    /// The full gRPC path, such as `/supervision.registry.v1.RegistryService/RecordIncident`.
    pub method: &'a str,
    /// The callee's idempotency key (the request's `request_id`); enqueuing it twice is a no-op.
    pub idempotency_key: &'a str,
    /// The user the call acts for.
    pub actor: &'a Actor,
}

/// Writes `message` for delivery, inside the caller's transaction, with the current span's trace
/// context.
pub async fn enqueue<M: Message>(
    tx: &mut Transaction<'static, Any>,
    clock: &SharedClock,
    delivery: Delivery<'_>,
    message: &M,
) -> Result<(), sqlx::Error> {
    let now = format_instant(clock.now());
    sqlx::query(
        "INSERT INTO kit_outbox (destination, method, idempotency_key, payload, actor_json, trace_context, \
         created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (destination, method, idempotency_key) DO NOTHING",
    )
    .bind(delivery.destination)
    .bind(delivery.method)
    .bind(delivery.idempotency_key)
    .bind(message.encode_to_vec())
    .bind(serde_json::to_string(delivery.actor).unwrap_or_default())
    .bind(telemetry::current_trace_context())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Rows not yet delivered, and the creation time of the oldest, for metrics and alerts.
pub async fn backlog(db: &Db) -> Result<(i64, Option<String>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM kit_outbox WHERE delivered_at IS NULL AND parked_at IS NULL",
    )
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}

/// Rows parked after a permanent refusal, waiting for an operator.
pub async fn parked(db: &Db) -> Result<i64, sqlx::Error> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM kit_outbox WHERE parked_at IS NOT NULL").fetch_one(db.pool()).await?;
    row.try_get("n")
}

/// Delivers outbox rows to their destinations.
#[derive(Debug, Clone)]
pub struct Relay {
    db: Db,
    clock: SharedClock,
    destinations: HashMap<String, Channel>,
    service_token: String,
    deliveries: Option<Counter>,
}

struct Due {
    id: i64,
    destination: String,
    method: String,
    payload: Vec<u8>,
    actor_json: String,
    trace_context: String,
    attempts: i64,
}

impl Relay {
    /// `destinations` maps service names to channels; `service_token` is this service's own
    /// SERVICE token, sent with every delivery.
    pub fn new(db: Db, clock: SharedClock, destinations: HashMap<String, Channel>, service_token: String) -> Self {
        Self { db, clock, destinations, service_token, deliveries: None }
    }

    /// Counts delivery attempts by destination and outcome into `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.deliveries = Some(metrics.counter(
            "supervision_outbox_deliveries_total",
            "Outbox delivery attempts, by destination and gRPC status code of the answer",
        ));
        self
    }

    /// Delivers until shutdown, polling every `every`.
    pub fn spawn(self, every: Duration, shutdown: Shutdown) {
        tokio::spawn(async move {
            loop {
                match self.deliver_due().await {
                    Ok(n) if n > 0 => tracing::debug!(delivered = n, "outbox"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "outbox relay pass failed"),
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// One pass: leases the due rows, delivers each, records the outcome. Returns how many
    /// were acknowledged.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        let mut delivered = 0;
        for due in self.lease_due().await? {
            // A span in the trace of the change that enqueued the row.
            let span = tracing::info_span!(
                parent: None,
                "outbox.deliver",
                otel.name = %format!("outbox.deliver {}", due.method.trim_start_matches('/')),
                otel.kind = "client",
                destination = %due.destination,
                rpc.method = %due.method,
                attempt = due.attempts,
                rpc.grpc.status_code = tracing::field::Empty,
            );
            let _ = span.set_parent(telemetry::stored_trace_context(&due.trace_context));
            if !self.renew_lease(&due).await? {
                tracing::debug!(id = due.id, "outbox row claimed by another relay meanwhile; left to it");
                continue;
            }
            if self.deliver_one(&due).instrument(span).await? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Delivers one leased row and records the outcome; true when acknowledged.
    async fn deliver_one(&self, due: &Due) -> Result<bool, sqlx::Error> {
        let outcome = self.deliver(due).await;
        let code = outcome.as_ref().map_or_else(Status::code, |()| tonic::Code::Ok);
        tracing::Span::current().record("rpc.grpc.status_code", code as i64);
        if let Some(deliveries) = &self.deliveries {
            deliveries.inc(&[("destination", &due.destination), ("code", code_name(code))]);
        }
        let now = self.clock.now();
        match outcome {
            Ok(()) => {
                // Fenced by the attempt count: if the lease ran out and another relay took the
                // row, its outcome stands, not this one's.
                sqlx::query("UPDATE kit_outbox SET delivered_at = $1, last_error = '' WHERE id = $2 AND attempts = $3")
                    .bind(format_instant(now))
                    .bind(due.id)
                    .bind(due.attempts)
                    .execute(self.db.pool())
                    .await?;
                Ok(true)
            }
            Err(status) if is_permanent(status.code()) => {
                tracing::error!(
                    id = due.id, destination = %due.destination, method = %due.method,
                    code = ?status.code(), "outbox delivery refused for good; parked"
                );
                sqlx::query("UPDATE kit_outbox SET parked_at = $1, last_error = $2 WHERE id = $3 AND attempts = $4")
                    .bind(format_instant(now))
                    .bind(format!("{:?}: {}", status.code(), status.message()))
                    .bind(due.id)
                    .bind(due.attempts)
                    .execute(self.db.pool())
                    .await?;
                Ok(false)
            }
            Err(status) => {
                let wait = backoff(due.attempts);
                tracing::warn!(
                    id = due.id, destination = %due.destination, method = %due.method,
                    code = ?status.code(), attempts = due.attempts, retry_in = ?wait,
                    "outbox delivery failed"
                );
                let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
                sqlx::query(
                    "UPDATE kit_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3 AND attempts = $4",
                )
                .bind(format_instant(next))
                .bind(format!("{:?}: {}", status.code(), status.message()))
                .bind(due.id)
                .bind(due.attempts)
                .execute(self.db.pool())
                .await?;
                Ok(false)
            }
        }
    }

    /// Extends the lease of a row this pass claimed by [`LEASE`] from now, right before its
    /// delivery. False when the claim is no longer this relay's: the lease ran out and another
    /// relay claimed the row (its attempt count moved), or already settled it.
    async fn renew_lease(&self, due: &Due) -> Result<bool, sqlx::Error> {
        let until = self.clock.now() + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(30));
        let renewed = sqlx::query(
            "UPDATE kit_outbox SET next_attempt_at = $1 \
             WHERE id = $2 AND attempts = $3 AND delivered_at IS NULL AND parked_at IS NULL",
        )
        .bind(format_instant(until))
        .bind(due.id)
        .bind(due.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn lease_due(&self) -> Result<Vec<Due>, sqlx::Error> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(30));
        let mut tx = self.db.begin_write().await?;
        let lock = match self.db.backend() {
            // Replicas skip each other's rows instead of queueing behind them.
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let select = format!(
            "SELECT id, destination, method, payload, actor_json, trace_context, attempts FROM kit_outbox \
             WHERE delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2{lock}"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(select)).bind(format_instant(now)).bind(BATCH).fetch_all(&mut *tx).await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            sqlx::query("UPDATE kit_outbox SET next_attempt_at = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(format_instant(lease_until))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            due.push(Due {
                id,
                destination: row.try_get("destination")?,
                method: row.try_get("method")?,
                payload: row.try_get("payload")?,
                actor_json: row.try_get("actor_json")?,
                trace_context: row.try_get("trace_context")?,
                attempts: row.try_get::<i64, _>("attempts")? + 1,
            });
        }
        tx.commit().await?;
        Ok(due)
    }

    /// One delivery, cut off after [`DELIVERY_TIMEOUT`] however long connecting takes, so that
    /// it ends well inside the row's lease.
    async fn deliver(&self, due: &Due) -> Result<(), Status> {
        tokio::time::timeout(DELIVERY_TIMEOUT, self.call(due))
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("no answer within {DELIVERY_TIMEOUT:?}"))))
    }

    async fn call(&self, due: &Due) -> Result<(), Status> {
        let channel = self
            .destinations
            .get(&due.destination)
            .ok_or_else(|| Status::failed_precondition(format!("no endpoint configured for {}", due.destination)))?;
        let path = due.method.parse().map_err(|_| Status::internal(format!("bad method path {}", due.method)))?;
        let mut request = tonic::Request::new(due.payload.clone());
        request.set_timeout(DELIVERY_TIMEOUT);
        let metadata = request.metadata_mut();
        metadata.insert(
            AUTHORIZATION,
            format!("Bearer {}", self.service_token).parse().map_err(|_| Status::internal("bad service token"))?,
        );
        if let Ok(actor) = serde_json::from_str::<Actor>(&due.actor_json) {
            metadata.insert_bin(ACTOR_HEADER, tonic::metadata::MetadataValue::from_bytes(&encode_actor(&actor)));
        }
        // The callee's span joins the delivery's trace.
        telemetry::inject_current(metadata);
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        // The whole answer, not only its headers, within the delivery's deadline.
        crate::client::deadline(DELIVERY_TIMEOUT, &due.method, grpc.unary(request, path, RawCodec)).await.map(|_| ())
    }
}

/// Answers that retrying cannot change: the call itself is wrong, or not served at all. Anything
/// else (unavailable, deadline, aborted, internal, a precondition that may yet hold) is retried.
fn is_permanent(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::InvalidArgument | tonic::Code::Unimplemented | tonic::Code::PermissionDenied)
}

/// Exponential backoff from 1 s, doubled per attempt up to [`MAX_BACKOFF`], with full jitter
/// ([`crate::client::Backoff`]) so replicas and rows do not retry in lockstep, never past the cap.
fn backoff(attempts: i64) -> Duration {
    let attempt = u32::try_from(attempts.clamp(1, 32)).unwrap_or(1);
    crate::client::Backoff::new(Duration::from_secs(1), MAX_BACKOFF).delay(attempt)
}

/// Passes already-encoded messages through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(1));
        assert!(backoff(4) <= Duration::from_secs(8));
        assert!((0..100).all(|_| backoff(60) <= MAX_BACKOFF));
        let mean = |attempts| (0..200).map(|_| backoff(attempts)).sum::<Duration>() / 200;
        assert!(mean(8) > mean(2), "the wait grows with the attempts");
    }
}
