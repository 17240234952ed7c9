//! Thin handlers of `supervision.finance.v1.FinanceService`.

use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::{
    common,
    finance::{self as pb, finance_service_server::FinanceService},
};
use supervision_reference::Reference;
use tonic::{Request, Response, Status};

use crate::{
    batches::{self, Transition},
    convert::{self, batches as batch_cx, fee_lines as line_cx},
    domain::BatchId,
    exports, fee_lines,
    registry::RegistryPeer,
    statements,
};

const EXPORT_LEDGER: &str = "/supervision.finance.v1.FinanceService/ExportLedger";
const RECORD_SESSIONS: &str = "/supervision.finance.v1.FinanceService/RecordSessions";
const CREATE_BATCH: &str = "/supervision.finance.v1.FinanceService/CreatePaymentBatch";
const SUBMIT_BATCH: &str = "/supervision.finance.v1.FinanceService/SubmitPaymentBatch";
const APPROVE_BATCH: &str = "/supervision.finance.v1.FinanceService/ApprovePaymentBatch";
const REJECT_BATCH: &str = "/supervision.finance.v1.FinanceService/RejectPaymentBatch";
const CANCEL_BATCH: &str = "/supervision.finance.v1.FinanceService/CancelPaymentBatch";
const MARK_BATCH_PAID: &str = "/supervision.finance.v1.FinanceService/MarkPaymentBatchPaid";

#[derive(Debug, Clone)]
pub struct Finance {
    db: Db,
    clock: SharedClock,
    reference: Reference,
    registry: RegistryPeer,
}

impl Finance {
    pub fn new(db: Db, clock: SharedClock, reference: Reference, registry: RegistryPeer) -> Self {
        Self { db, clock, reference, registry }
    }

    /// One transition of a batch, through the idempotency claim; answers the batch after it.
    async fn batch_step(
        &self,
        caller: &Caller,
        command: Result<Command, Status>,
        parsed: Result<(BatchId, Transition), Status>,
    ) -> Result<pb::PaymentBatch, Status> {
        let command = command?;
        let (id, step) = parsed?;
        let mut claim = match idempotency::begin::<pb::PaymentBatch>(&self.db, &self.clock, &command).await? {
            Begun::Replay(batch) => return Ok(batch),
            Begun::Fresh(claim) => claim,
        };
        let batch =
            batches::transition(claim.tx(), self.db.backend(), &self.clock, caller, &command, &id, step).await?;
        let answer = batch_cx::batch_to_proto(&batch);
        claim.finish(&answer).await?;
        Ok(answer)
    }
}

#[tonic::async_trait]
impl FinanceService for Finance {
    async fn record_sessions(
        &self,
        request: Request<pb::RecordSessionsRequest>,
    ) -> Result<Response<pb::RecordSessionsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_SESSIONS, &message.request_id, &message)?;
        let revision = line_cx::revision(&message)?;
        let wrong = fee_lines::check_half_days(&self.reference, &revision)?;
        if !wrong.is_empty() {
            return Err(line_cx::wrong_half_days(&wrong));
        }
        // The registry is asked before the claim: no network call holds the write transaction.
        let lookups = fee_lines::look_up(&self.db, &self.reference, &self.registry, &caller, &revision).await?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let outcome =
            fee_lines::apply(claim.tx(), self.db.backend(), &self.clock, &caller, &command, &revision, &lookups)
                .await?;
        let response = line_cx::outcome_to_proto(outcome);
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_fee_line(
        &self,
        request: Request<pb::GetFeeLineRequest>,
    ) -> Result<Response<pb::GetFeeLineResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = line_cx::line_id(request.get_ref())?;
        let line = fee_lines::get(&self.db, &fee_lines::Scope::of(caller), &id).await?;
        Ok(Response::new(pb::GetFeeLineResponse { line: Some(line_cx::line_to_proto(line)) }))
    }

    async fn list_fee_lines(
        &self,
        request: Request<pb::ListFeeLinesRequest>,
    ) -> Result<Response<pb::ListFeeLinesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = line_cx::line_listing(request.get_ref(), caller)?;
        let (lines, next) = fee_lines::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListFeeLinesResponse {
            lines: lines.into_iter().map(line_cx::line_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn export_ledger(
        &self,
        request: Request<pb::ExportLedgerRequest>,
    ) -> Result<Response<pb::ExportLedgerResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXPORT_LEDGER, &message.request_id, &message)?;
        let (query, encoding) = convert::ledger_request(&message, &caller)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let written =
            exports::write_ledger(claim.tx(), &self.db, &self.clock, &caller, &command, query, encoding).await?;
        let file = common::FileContent {
            file_name: written.record.file_name.clone(),
            media_type: encoding.media_type().to_owned(),
            sha256: written.record.sha256.clone(),
            content: written.bytes,
        };
        let response =
            pb::ExportLedgerResponse { export: Some(convert::export_to_proto(written.record)), file: Some(file) };
        // The ledger holds no personal data, so keeping the answer for retries is allowed.
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_exports(
        &self,
        request: Request<pb::ListExportsRequest>,
    ) -> Result<Response<pb::ListExportsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (kind, bureau, page) = convert::export_listing(request.get_ref(), caller)?;
        let (items, next) = exports::list(&self.db, kind, bureau, &page).await?;
        Ok(Response::new(pb::ListExportsResponse {
            exports: items.into_iter().map(convert::export_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_monthly_statement(
        &self,
        request: Request<pb::GetMonthlyStatementRequest>,
    ) -> Result<Response<pb::GetMonthlyStatementResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (expert, bureau, month) = batch_cx::statement_request(request.get_ref(), caller)?;
        let statement = statements::get(&self.db, &expert, bureau, month).await?;
        Ok(Response::new(pb::GetMonthlyStatementResponse { statement: Some(batch_cx::statement_to_proto(statement)) }))
    }

    async fn list_monthly_statements(
        &self,
        request: Request<pb::ListMonthlyStatementsRequest>,
    ) -> Result<Response<pb::ListMonthlyStatementsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = batch_cx::statement_listing(request.get_ref(), caller)?;
        let (items, next) = statements::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListMonthlyStatementsResponse {
            statements: items.into_iter().map(batch_cx::statement_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn create_payment_batch(
        &self,
        request: Request<pb::CreatePaymentBatchRequest>,
    ) -> Result<Response<pb::CreatePaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_BATCH, &message.request_id, &message)?;
        let new = batch_cx::new_batch(&message)?;
        caller.require_bureau(new.bureau)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let batch =
            batches::create(claim.tx(), self.db.backend(), &self.clock, &self.reference, &caller, &command, &new)
                .await?;
        let response = pb::CreatePaymentBatchResponse { batch: Some(batch_cx::batch_to_proto(&batch)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn submit_payment_batch(
        &self,
        request: Request<pb::SubmitPaymentBatchRequest>,
    ) -> Result<Response<pb::SubmitPaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let m = request.into_inner();
        let parsed = batch_cx::batch_id(&m.batch_id, "batch_id").map(|id| (id, Transition::Submit));
        let batch = self.batch_step(&caller, Command::new(&caller, SUBMIT_BATCH, &m.request_id, &m), parsed).await?;
        Ok(Response::new(pb::SubmitPaymentBatchResponse { batch: Some(batch) }))
    }

    async fn approve_payment_batch(
        &self,
        request: Request<pb::ApprovePaymentBatchRequest>,
    ) -> Result<Response<pb::ApprovePaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let m = request.into_inner();
        let batch = self
            .batch_step(&caller, Command::new(&caller, APPROVE_BATCH, &m.request_id, &m), batch_cx::approve(&m))
            .await?;
        Ok(Response::new(pb::ApprovePaymentBatchResponse { batch: Some(batch) }))
    }

    async fn reject_payment_batch(
        &self,
        request: Request<pb::RejectPaymentBatchRequest>,
    ) -> Result<Response<pb::RejectPaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let m = request.into_inner();
        let batch = self
            .batch_step(&caller, Command::new(&caller, REJECT_BATCH, &m.request_id, &m), batch_cx::reject(&m))
            .await?;
        Ok(Response::new(pb::RejectPaymentBatchResponse { batch: Some(batch) }))
    }

    async fn cancel_payment_batch(
        &self,
        request: Request<pb::CancelPaymentBatchRequest>,
    ) -> Result<Response<pb::CancelPaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let m = request.into_inner();
        let batch = self
            .batch_step(&caller, Command::new(&caller, CANCEL_BATCH, &m.request_id, &m), batch_cx::cancel(&m))
            .await?;
        Ok(Response::new(pb::CancelPaymentBatchResponse { batch: Some(batch) }))
    }

    async fn mark_payment_batch_paid(
        &self,
        request: Request<pb::MarkPaymentBatchPaidRequest>,
    ) -> Result<Response<pb::MarkPaymentBatchPaidResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let m = request.into_inner();
        let batch = self
            .batch_step(&caller, Command::new(&caller, MARK_BATCH_PAID, &m.request_id, &m), batch_cx::mark_paid(&m))
            .await?;
        Ok(Response::new(pb::MarkPaymentBatchPaidResponse { batch: Some(batch) }))
    }

    async fn get_payment_batch(
        &self,
        request: Request<pb::GetPaymentBatchRequest>,
    ) -> Result<Response<pb::GetPaymentBatchResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = batch_cx::batch_id(&request.get_ref().id, "id")?;
        let batch = batches::get(&self.db, caller, &id).await?;
        Ok(Response::new(pb::GetPaymentBatchResponse { batch: Some(batch_cx::batch_to_proto(&batch)) }))
    }

    async fn list_payment_batches(
        &self,
        request: Request<pb::ListPaymentBatchesRequest>,
    ) -> Result<Response<pb::ListPaymentBatchesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = batch_cx::batch_listing(request.get_ref(), caller)?;
        let (items, next) = batches::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListPaymentBatchesResponse {
            batches: items.iter().map(batch_cx::batch_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "finance").await?;
        Ok(Response::new(pb::GetAuditHeadResponse { head: Some(head) }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let r = request.get_ref();
        let (entries, next_page_token) =
            audit::api::list(&self.db, r.page.as_ref(), r.start_sequence, &r.entity_type, &r.entity_id).await?;
        Ok(Response::new(pb::ListAuditEntriesResponse { entries, next_page_token }))
    }
}
