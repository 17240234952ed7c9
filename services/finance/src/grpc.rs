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
    convert::{self, fee_lines as line_cx},
    exports, fee_lines,
    registry::RegistryPeer,
};

const EXPORT_LEDGER: &str = "/supervision.finance.v1.FinanceService/ExportLedger";
const RECORD_SESSIONS: &str = "/supervision.finance.v1.FinanceService/RecordSessions";

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
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
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
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
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
