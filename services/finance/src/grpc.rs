//! Thin handlers of `supervision.finance.v1.FinanceService`.

use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::{
    common,
    finance::{self as pb, finance_service_server::FinanceService},
};
use tonic::{Request, Response, Status};

use crate::{convert, exports};

const EXPORT_LEDGER: &str = "/supervision.finance.v1.FinanceService/ExportLedger";

#[derive(Debug, Clone)]
pub struct Finance {
    db: Db,
    clock: SharedClock,
}

impl Finance {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

#[tonic::async_trait]
impl FinanceService for Finance {
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
