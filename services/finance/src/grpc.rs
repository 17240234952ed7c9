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
    domain::ExportFormat,
    exports::{self, Prepared},
    fee_lines, reconcile,
    registry::RegistryPeer,
    statements,
};

/// The answer of an export that holds personal data: the record and the file. What the
/// idempotency store keeps is the answer without the file's bytes; a retry builds the file again.
trait ExportAnswer: prost::Message + Default + Sized {
    fn new(export: pb::Export, file: common::FileContent) -> Self;
    fn parts(self) -> (Option<pb::Export>, Option<common::FileContent>);
}

macro_rules! export_answer {
    ($($t:ty),+) => {$(
        impl ExportAnswer for $t {
            fn new(export: pb::Export, file: common::FileContent) -> Self {
                Self { export: Some(export), file: Some(file) }
            }
            fn parts(self) -> (Option<pb::Export>, Option<common::FileContent>) {
                (self.export, self.file)
            }
        }
    )+};
}

export_answer!(
    pb::ExportBankPaymentFileResponse,
    pb::ExportWithholdingReturnResponse,
    pb::ExportYearlyStatementResponse
);

const EXPORT_BANK_FILE: &str = "/supervision.finance.v1.FinanceService/ExportBankPaymentFile";
const EXPORT_WITHHOLDING: &str = "/supervision.finance.v1.FinanceService/ExportWithholdingReturn";
const EXPORT_YEARLY: &str = "/supervision.finance.v1.FinanceService/ExportYearlyStatement";
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

impl Finance {
    /// Records a prepared export through the idempotency claim and answers it with its file. The
    /// stored answer keeps the record and the file's name, type and SHA-256, never its bytes
    /// (they hold identity numbers and accounts): a retry returns the file built again, which
    /// must have the same SHA-256, or is refused.
    async fn write_export<R: ExportAnswer>(
        &self,
        caller: &Caller,
        command: &Command,
        prepared: Prepared,
        format: ExportFormat,
    ) -> Result<R, Status> {
        let file = |bytes: Vec<u8>, sha256: &str, name: &str| common::FileContent {
            file_name: name.to_owned(),
            media_type: format.media_type().to_owned(),
            sha256: sha256.to_owned(),
            content: bytes,
        };
        let mut claim = match idempotency::begin::<R>(&self.db, &self.clock, command).await? {
            Begun::Replay(stored) => {
                let (export, kept) = stored.parts();
                let (Some(export), Some(kept)) = (export, kept) else {
                    return Err(supervision_kit::internal("a stored export answer lacks its record"));
                };
                exports::replayed(&kept.sha256, &prepared)?;
                let again = file(prepared.bytes, &kept.sha256, &kept.file_name);
                return Ok(R::new(export, again));
            }
            Begun::Fresh(claim) => claim,
        };
        exports::record(claim.tx(), &self.db, &self.clock, caller, command, &prepared).await?;
        let record = prepared.record;
        let full = file(prepared.bytes, &record.sha256, &record.file_name);
        let export = convert::export_to_proto(record);
        let kept = common::FileContent { content: vec![], ..full.clone() };
        claim.finish(&R::new(export.clone(), kept)).await?;
        Ok(R::new(export, full))
    }
}

#[tonic::async_trait]
impl FinanceService for Finance {
    async fn export_bank_payment_file(
        &self,
        request: Request<pb::ExportBankPaymentFileRequest>,
    ) -> Result<Response<pb::ExportBankPaymentFileResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXPORT_BANK_FILE, &message.request_id, &message)?;
        let (id, format) = convert::bank_file_request(&message)?;
        let prepared =
            exports::prepare_bank_file(&self.db, &self.clock, &self.registry, &caller, &command, &id, format).await?;
        Ok(Response::new(self.write_export(&caller, &command, prepared, format).await?))
    }

    async fn export_withholding_return(
        &self,
        request: Request<pb::ExportWithholdingReturnRequest>,
    ) -> Result<Response<pb::ExportWithholdingReturnResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXPORT_WITHHOLDING, &message.request_id, &message)?;
        let (bureau, month, format) = convert::withholding_request(&message, &caller)?;
        let prepared = exports::prepare_withholding_return(
            &self.db,
            &self.clock,
            &self.registry,
            &caller,
            &command,
            bureau,
            month,
            format,
        )
        .await?;
        Ok(Response::new(self.write_export(&caller, &command, prepared, format).await?))
    }

    async fn export_yearly_statement(
        &self,
        request: Request<pb::ExportYearlyStatementRequest>,
    ) -> Result<Response<pb::ExportYearlyStatementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXPORT_YEARLY, &message.request_id, &message)?;
        let (expert, bureau, year, format) = convert::yearly_request(&message, &caller)?;
        let prepared = exports::prepare_yearly_statement(
            &self.db,
            &self.clock,
            &self.registry,
            &caller,
            &command,
            &expert,
            bureau,
            year,
            format,
        )
        .await?;
        Ok(Response::new(self.write_export(&caller, &command, prepared, format).await?))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (bureau, month) = convert::reconcile_request(request.get_ref(), caller)?;
        let reconciliation = reconcile::reconcile(&self.db, caller, bureau, month).await?;
        Ok(Response::new(convert::reconciliation_to_proto(&reconciliation)))
    }

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
