//! Thin handlers of `supervision.registry.v1.RegistryService`: who is calling, convert, run the
//! use case (idempotently when it changes state), convert back.

use chrono::NaiveDate;
use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
    personal::PersonalDataKey,
};
use supervision_proto::registry::{self as pb, registry_service_server::RegistryService};
use supervision_reference::{Reference, shanghai_today};
use tonic::{Request, Response, Status};

use crate::{
    convert::{self, experts as cx},
    domain::Visibility,
    experts, institutions,
};

const CREATE_INSTITUTION: &str = "/supervision.registry.v1.RegistryService/CreateInstitution";
const CREATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/CreateExpert";
const UPDATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/UpdateExpert";
const CONFIRM_EXPERT_DATA: &str = "/supervision.registry.v1.RegistryService/ConfirmExpertData";
const RECORD_CIVIL_SERVANT_STATUS: &str = "/supervision.registry.v1.RegistryService/RecordCivilServantStatus";

#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
    clock: SharedClock,
    /// Encrypts, indexes and decrypts experts' personal data.
    key: PersonalDataKey,
    /// The policy editions (article 10's exemption) and the calendar.
    reference: Reference,
}

impl Registry {
    pub fn new(db: Db, clock: SharedClock, key: PersonalDataKey, reference: Reference) -> Self {
        Self { db, clock, key, reference }
    }

    fn today(&self) -> NaiveDate {
        shanghai_today(&self.clock)
    }

    /// An expert as `caller` may see it.
    fn expert_for(&self, caller: &Caller, expert: &crate::domain::Expert) -> pb::Expert {
        cx::expert_to_proto(expert, experts::visibility(caller, &expert.id), self.today())
    }

    /// The answer to a replayed command about an expert. Stored answers keep personal data
    /// masked (the idempotency table must not hold plain numbers), so the replay reads the
    /// expert again and shows it as `caller` may see it.
    async fn replayed(&self, caller: &Caller, stored: Option<pb::Expert>) -> Result<pb::Expert, Status> {
        let id = cx::expert_id(&stored.map(|e| e.id).unwrap_or_default(), "id")?;
        let expert = experts::get(&self.db, &self.key, caller, &id).await?;
        Ok(self.expert_for(caller, &expert))
    }
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn create_institution(
        &self,
        request: Request<pb::CreateInstitutionRequest>,
    ) -> Result<Response<pb::CreateInstitutionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_INSTITUTION, &message.request_id, &message)?;
        let new = convert::new_institution(message)?;
        caller.require_bureau(new.county)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let institution = institutions::create(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::CreateInstitutionResponse { institution: Some(convert::institution_to_proto(institution)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_institution(
        &self,
        request: Request<pb::GetInstitutionRequest>,
    ) -> Result<Response<pb::GetInstitutionResponse>, Status> {
        let id = convert::institution_id(&request.get_ref().id, "id")?;
        let institution = institutions::get(&self.db, &id).await?;
        Ok(Response::new(pb::GetInstitutionResponse { institution: Some(convert::institution_to_proto(institution)) }))
    }

    async fn list_institutions(
        &self,
        request: Request<pb::ListInstitutionsRequest>,
    ) -> Result<Response<pb::ListInstitutionsResponse>, Status> {
        let (filter, page) = convert::institution_listing(request.get_ref())?;
        let (items, next) = institutions::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListInstitutionsResponse {
            institutions: items.into_iter().map(convert::institution_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn create_expert(
        &self,
        request: Request<pb::CreateExpertRequest>,
    ) -> Result<Response<pb::CreateExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_EXPERT, &message.request_id, &message)?;
        let new = cx::new_expert(&message, self.today())?;
        if message.existing_appointment.is_some() {
            return Err(crate::error::Error::ExistingAppointmentUnsupported.into());
        }
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::CreateExpertResponse = stored;
                let expert = self.replayed(&caller, stored.expert).await?;
                return Ok(Response::new(pb::CreateExpertResponse { expert: Some(expert) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let expert = experts::create(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, new).await?;
        let stored = cx::expert_to_proto(&expert, Visibility::Masked, self.today());
        claim.finish(&pb::CreateExpertResponse { expert: Some(stored) }).await?;
        Ok(Response::new(pb::CreateExpertResponse { expert: Some(self.expert_for(&caller, &expert)) }))
    }

    async fn get_expert(
        &self,
        request: Request<pb::GetExpertRequest>,
    ) -> Result<Response<pb::GetExpertResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = cx::expert_id(&request.get_ref().id, "id")?;
        let expert = experts::get(&self.db, &self.key, caller, &id).await?;
        Ok(Response::new(pb::GetExpertResponse { expert: Some(self.expert_for(caller, &expert)) }))
    }

    async fn update_expert(
        &self,
        request: Request<pb::UpdateExpertRequest>,
    ) -> Result<Response<pb::UpdateExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPDATE_EXPERT, &message.request_id, &message)?;
        let update = cx::expert_update(&message, self.clock.now(), self.today())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::UpdateExpertResponse = stored;
                let expert = self.replayed(&caller, stored.expert).await?;
                return Ok(Response::new(pb::UpdateExpertResponse { expert: Some(expert) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let expert = experts::update(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, update).await?;
        let stored = cx::expert_to_proto(&expert, Visibility::Masked, self.today());
        claim.finish(&pb::UpdateExpertResponse { expert: Some(stored) }).await?;
        Ok(Response::new(pb::UpdateExpertResponse { expert: Some(self.expert_for(&caller, &expert)) }))
    }

    async fn list_experts(
        &self,
        request: Request<pb::ListExpertsRequest>,
    ) -> Result<Response<pb::ListExpertsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let listing = cx::expert_listing(request.get_ref(), self.today())?;
        let (items, next) = experts::list(&self.db, &self.key, listing).await?;
        Ok(Response::new(pb::ListExpertsResponse {
            experts: items.iter().map(|e| self.expert_for(caller, e)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_expert_changes(
        &self,
        request: Request<pb::ListExpertChangesRequest>,
    ) -> Result<Response<pb::ListExpertChangesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (id, page) = cx::changes_listing(request.get_ref())?;
        let (items, next) = experts::list_changes(&self.db, &self.key, caller, &id, &page).await?;
        Ok(Response::new(pb::ListExpertChangesResponse {
            changes: items.iter().map(cx::change_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn confirm_expert_data(
        &self,
        request: Request<pb::ConfirmExpertDataRequest>,
    ) -> Result<Response<pb::ConfirmExpertDataResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CONFIRM_EXPERT_DATA, &message.request_id, &message)?;
        let by_the_expert = caller.role == supervision_kit::Role::Expert;
        let confirmation = cx::confirmation(&message, self.clock.now(), self.today(), by_the_expert)?;
        experts::require_own(&caller, &confirmation.expert_id)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::ConfirmExpertDataResponse = stored;
                let expert = self.replayed(&caller, stored.expert).await?;
                return Ok(Response::new(pb::ConfirmExpertDataResponse { expert: Some(expert) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let expert =
            experts::confirm(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, confirmation).await?;
        let stored = cx::expert_to_proto(&expert, Visibility::Masked, self.today());
        claim.finish(&pb::ConfirmExpertDataResponse { expert: Some(stored) }).await?;
        Ok(Response::new(pb::ConfirmExpertDataResponse { expert: Some(self.expert_for(&caller, &expert)) }))
    }

    async fn record_civil_servant_status(
        &self,
        request: Request<pb::RecordCivilServantStatusRequest>,
    ) -> Result<Response<pb::RecordCivilServantStatusResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_CIVIL_SERVANT_STATUS, &message.request_id, &message)?;
        let entry = cx::civil_servant_entry(&message, self.clock.now())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let history =
            experts::record_civil_servant_status(claim.tx(), &self.db, &self.clock, &caller, &command, entry).await?;
        let response =
            pb::RecordCivilServantStatusResponse { history: history.iter().map(cx::period_to_proto).collect() };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_civil_servant_status(
        &self,
        request: Request<pb::GetCivilServantStatusRequest>,
    ) -> Result<Response<pb::GetCivilServantStatusResponse>, Status> {
        let (id, date) = cx::civil_servant_query(request.get_ref())?;
        let answer = experts::civil_servant_status_on(&self.db, &self.reference, &id, date).await?;
        Ok(Response::new(pb::GetCivilServantStatusResponse {
            status: cx::status_to_proto(answer.period.status),
            fee_exempt: answer.fee_exempt,
            period: Some(cx::period_to_proto(&answer.period)),
            edition_number: i32::try_from(answer.edition_number).unwrap_or(i32::MAX),
        }))
    }

    async fn get_payee(&self, request: Request<pb::GetPayeeRequest>) -> Result<Response<pb::GetPayeeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (id, purpose) = cx::payee_query(request.get_ref())?;
        let (expert, visibility) = experts::payee(&self.db, &self.clock, &self.key, caller, &id, &purpose).await?;
        Ok(Response::new(cx::payee_to_proto(&expert, visibility)))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "registry").await?;
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
