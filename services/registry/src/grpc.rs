//! Thin handlers of `supervision.registry.v1.RegistryService`: who is calling, convert, run the
//! use case (idempotently when it changes state), convert back.

use chrono::NaiveDate;
use sha2::Digest;
use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
    personal::PersonalDataKey,
};
use supervision_proto::{
    common,
    registry::{self as pb, registry_service_server::RegistryService},
};
use supervision_reference::{Reference, shanghai_today};
use tonic::{Request, Response, Status, codegen::BoxStream};

use crate::{
    appointments,
    convert::{self, appointments as ca, experts as cx, relations as cr},
    documents,
    domain::Visibility,
    expert_cache::ExpertCache,
    experts, incidents, institutions, lifecycle, meetings, relations, sheets, transfer,
};

const CREATE_INSTITUTION: &str = "/supervision.registry.v1.RegistryService/CreateInstitution";
const CREATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/CreateExpert";
const UPDATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/UpdateExpert";
const CONFIRM_EXPERT_DATA: &str = "/supervision.registry.v1.RegistryService/ConfirmExpertData";
const RECORD_CIVIL_SERVANT_STATUS: &str = "/supervision.registry.v1.RegistryService/RecordCivilServantStatus";
const APPOINT_EXPERT: &str = "/supervision.registry.v1.RegistryService/AppointExpert";
const RENEW_TERM: &str = "/supervision.registry.v1.RegistryService/RenewTerm";
const SUSPEND_EXPERT: &str = "/supervision.registry.v1.RegistryService/SuspendExpert";
const REINSTATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/ReinstateExpert";
const RETIRE_EXPERT: &str = "/supervision.registry.v1.RegistryService/RetireExpert";
const TERMINATE_EXPERT: &str = "/supervision.registry.v1.RegistryService/TerminateExpert";
const RECORD_RELATION: &str = "/supervision.registry.v1.RegistryService/RecordRelation";
const END_RELATION: &str = "/supervision.registry.v1.RegistryService/EndRelation";
const RECORD_CONFLICT: &str = "/supervision.registry.v1.RegistryService/RecordConflict";
const RECORD_INCIDENT: &str = "/supervision.registry.v1.RegistryService/RecordIncident";
const RECORD_INCIDENT_STATEMENT: &str = "/supervision.registry.v1.RegistryService/RecordIncidentStatement";
const RECORD_YEARLY_ACCEPTANCE: &str = "/supervision.registry.v1.RegistryService/RecordYearlyAcceptance";
const DECIDE_RETIREMENT_PROPOSAL: &str = "/supervision.registry.v1.RegistryService/DecideRetirementProposal";
const CREATE_MEETING: &str = "/supervision.registry.v1.RegistryService/CreateMeeting";
const RECORD_MEETING_ATTENDANCE: &str = "/supervision.registry.v1.RegistryService/RecordMeetingAttendance";
const RECORD_MEETING_MINUTES: &str = "/supervision.registry.v1.RegistryService/RecordMeetingMinutes";
const CREATE_TRAINING: &str = "/supervision.registry.v1.RegistryService/CreateTraining";
const RECORD_TRAINING_ATTENDANCE: &str = "/supervision.registry.v1.RegistryService/RecordTrainingAttendance";
const RECORD_PUBLICITY_ACTIVITY: &str = "/supervision.registry.v1.RegistryService/RecordPublicityActivity";
const DECIDE_INCIDENT: &str = "/supervision.registry.v1.RegistryService/DecideIncident";
const UPDATE_INSTITUTION: &str = "/supervision.registry.v1.RegistryService/UpdateInstitution";
const UPLOAD_DOCUMENT: &str = "/supervision.registry.v1.RegistryService/UploadDocument";
const IMPORT_EXPERTS: &str = "/supervision.registry.v1.RegistryService/ImportExperts";
const IMPORT_INSTITUTIONS: &str = "/supervision.registry.v1.RegistryService/ImportInstitutions";

#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
    clock: SharedClock,
    /// Encrypts, indexes and decrypts experts' personal data.
    key: PersonalDataKey,
    /// The policy editions (article 10's exemption) and the calendar.
    reference: Reference,
    /// GetExpert's parsed copies of experts (PostgreSQL).
    experts: std::sync::Arc<ExpertCache>,
}

impl Registry {
    pub fn new(
        db: Db,
        clock: SharedClock,
        key: PersonalDataKey,
        reference: Reference,
        experts: std::sync::Arc<ExpertCache>,
    ) -> Self {
        Self { db, clock, key, reference, experts }
    }

    fn today(&self) -> NaiveDate {
        shanghai_today(&self.clock)
    }

    /// Refuses specialty codes the installed occupational classification rules out (the format is
    /// checked by the conversion; membership only where the list has that detail,
    /// docs/registry-rules.md "Specialty codes").
    fn listed_specialties(&self, specialties: Option<&[crate::domain::Specialty]>) -> Result<(), Status> {
        let mut v = supervision_kit::FieldViolations::new();
        for (i, s) in specialties.unwrap_or_default().iter().enumerate() {
            if let Err(problem) = self.reference.specialties().check(s.code.as_str()) {
                v.add(format!("profile.specialties[{i}].code"), problem);
            }
        }
        v.check()
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
        let expert = experts::get(&self.db, &self.key, &self.experts, caller, &id).await?;
        Ok(self.expert_for(caller, &expert))
    }
}

impl Registry {
    /// Runs a status change idempotently; the stored answer holds the expert masked, a replay
    /// shows it as `caller` may see it.
    async fn status_change(
        &self,
        caller: &Caller,
        command: &Command,
        request: ca::StatusRequest,
    ) -> Result<(pb::Expert, pb::ExpertStatusChange), Status> {
        let mut claim = match idempotency::begin(&self.db, &self.clock, command).await? {
            Begun::Replay(stored) => {
                let stored: pb::SuspendExpertResponse = stored;
                let expert = self.replayed(caller, stored.expert).await?;
                return Ok((expert, stored.change.unwrap_or_default()));
            }
            Begun::Fresh(claim) => claim,
        };
        let changed =
            appointments::change_status(claim.tx(), &self.db, &self.clock, &self.key, caller, command, request).await?;
        let change = ca::status_change_to_proto(&changed.change);
        let stored = cx::expert_to_proto(&changed.expert, Visibility::Masked, self.today());
        claim.finish(&pb::SuspendExpertResponse { expert: Some(stored), change: Some(change.clone()) }).await?;
        Ok((self.expert_for(caller, &changed.expert), change))
    }
}

/// Which import a stream runs.
#[derive(Debug, Clone, Copy)]
enum ImportKind {
    Experts,
    Institutions,
}

impl Registry {
    /// Runs an import idempotently and streams its progress, then its result: the rows are
    /// checked and stored inside the claim's transaction (see `transfer`), and the result is the
    /// answer kept under the request id. A replay streams the first result alone.
    #[allow(clippy::too_many_arguments)]
    async fn import_stream<M: Send + 'static>(
        &self,
        caller: Caller,
        command: Command,
        format: i32,
        content: &[u8],
        validate_only: bool,
        kind: ImportKind,
        wrap: fn(Result<pb::ImportResult, pb::ImportProgress>) -> M,
    ) -> Result<Response<BoxStream<M>>, Status> {
        let format = sheets::table_format(format, "format")?;
        let sheet = sheets::read(format, content)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::ImportResult = stored;
                let once = tokio_stream::once(Ok(wrap(Ok(stored))));
                return Ok(Response::new(Box::pin(once)));
            }
            Begun::Fresh(claim) => claim,
        };
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<M, Status>>(16);
        let this = self.clone();
        tokio::spawn(async move {
            let progress_sender = sender.clone();
            // Progress is best effort: a slow reader misses some, never the result.
            let progress = move |p: pb::ImportProgress| {
                let _ = progress_sender.try_send(Ok(wrap(Err(p))));
            };
            let context = transfer::ImportContext {
                db: &this.db,
                clock: &this.clock,
                key: &this.key,
                reference: &this.reference,
                caller: &caller,
                command: &command,
                validate_only,
            };
            let outcome = match kind {
                ImportKind::Experts => transfer::import_experts(claim.tx(), &context, sheet, &progress).await,
                ImportKind::Institutions => transfer::import_institutions(claim.tx(), &context, sheet, &progress).await,
            };
            let answer = match outcome {
                Ok(result) => claim.finish(&result).await.map(|()| result),
                Err(status) => Err(status),
            };
            if let Err(status) = &answer {
                tracing::warn!(method = command.method, code = ?status.code(), "import failed: {}", status.message());
            }
            // A caller that hung up finds the answer under its request id when it retries.
            let _ = sender.send(answer.map(|r| wrap(Ok(r)))).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}

fn export_stream<M: Send + 'static>(
    file_name: String,
    media_type: &'static str,
    file: &[u8],
    make: fn(String, String, Vec<u8>, String) -> M,
) -> BoxStream<M> {
    let parts = sheets::chunks(file);
    let messages: Vec<Result<M, Status>> = parts
        .into_iter()
        .enumerate()
        .map(|(i, (chunk, sha256))| {
            let (name, media) = if i == 0 { (file_name.clone(), media_type.to_owned()) } else { Default::default() };
            Ok(make(name, media, chunk, sha256))
        })
        .collect();
    Box::pin(tokio_stream::iter(messages))
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
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
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

    async fn update_institution(
        &self,
        request: Request<pb::UpdateInstitutionRequest>,
    ) -> Result<Response<pb::UpdateInstitutionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPDATE_INSTITUTION, &message.request_id, &message)?;
        let update = convert::institution_update(message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let institution = institutions::update(claim.tx(), &self.db, &self.clock, &caller, &command, update).await?;
        let response = pb::UpdateInstitutionResponse { institution: Some(convert::institution_to_proto(institution)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn create_expert(
        &self,
        request: Request<pb::CreateExpertRequest>,
    ) -> Result<Response<pb::CreateExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_EXPERT, &message.request_id, &message)?;
        let new = cx::new_expert(&message, self.today())?;
        self.listed_specialties(Some(&new.profile.specialties))?;
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
        let expert = experts::get(&self.db, &self.key, &self.experts, caller, &id).await?;
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
        self.listed_specialties(update.patch.specialties.as_deref())?;
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
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
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

    async fn appoint_expert(
        &self,
        request: Request<pb::AppointExpertRequest>,
    ) -> Result<Response<pb::AppointExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, APPOINT_EXPERT, &message.request_id, &message)?;
        let new = ca::new_appointment(&message, self.today())?;
        self.listed_specialties(Some(&new.profile.specialties))?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::AppointExpertResponse = stored;
                let expert = self.replayed(&caller, stored.expert).await?;
                return Ok(Response::new(pb::AppointExpertResponse { expert: Some(expert), ..stored }));
            }
            Begun::Fresh(claim) => claim,
        };
        let done = appointments::appoint(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &self.reference,
            &caller,
            &command,
            new,
        )
        .await?;
        let appointment = Some(ca::appointment_to_proto(&done.appointment, self.today()));
        let stored = pb::AppointExpertResponse {
            expert: Some(cx::expert_to_proto(&done.expert, Visibility::Masked, self.today())),
            appointment: appointment.clone(),
            existing_record: done.existing_record,
        };
        claim.finish(&stored).await?;
        Ok(Response::new(pb::AppointExpertResponse {
            expert: Some(self.expert_for(&caller, &done.expert)),
            appointment,
            existing_record: done.existing_record,
        }))
    }

    async fn renew_term(
        &self,
        request: Request<pb::RenewTermRequest>,
    ) -> Result<Response<pb::RenewTermResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RENEW_TERM, &message.request_id, &message)?;
        let renewal = ca::renewal(&message, self.today())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::RenewTermResponse = stored;
                let expert = self.replayed(&caller, stored.expert).await?;
                return Ok(Response::new(pb::RenewTermResponse { expert: Some(expert), ..stored }));
            }
            Begun::Fresh(claim) => claim,
        };
        let done = appointments::renew(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &self.reference,
            &caller,
            &command,
            renewal,
        )
        .await?;
        let appointment = Some(ca::appointment_to_proto(&done.appointment, self.today()));
        let stored = pb::RenewTermResponse {
            expert: Some(cx::expert_to_proto(&done.expert, Visibility::Masked, self.today())),
            appointment: appointment.clone(),
        };
        claim.finish(&stored).await?;
        Ok(Response::new(pb::RenewTermResponse { expert: Some(self.expert_for(&caller, &done.expert)), appointment }))
    }

    async fn get_reapplication_flags(
        &self,
        request: Request<pb::GetReapplicationFlagsRequest>,
    ) -> Result<Response<pb::GetReapplicationFlagsResponse>, Status> {
        Ok(Response::new(crate::reapplication::flags(&self.db, &self.key, request.get_ref(), self.today()).await?))
    }

    async fn list_appointments(
        &self,
        request: Request<pb::ListAppointmentsRequest>,
    ) -> Result<Response<pb::ListAppointmentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = ca::appointment_listing(request.get_ref())?;
        let today = self.today();
        let (items, next) = appointments::list(&self.db, caller, filter, today, &page).await?;
        Ok(Response::new(pb::ListAppointmentsResponse {
            appointments: items.iter().map(|a| ca::appointment_to_proto(a, today)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::GetCertificateResponse>, Status> {
        let caller = Caller::of(&request)?;
        let r = request.get_ref();
        let id = ca::appointment_id(&r.appointment_id, "appointment_id")?;
        if r.format != common::FileFormat::Html as i32 {
            return Err(supervision_kit::error::invalid_field(
                "format",
                "must be HTML: the certificate prints from HTML",
            ));
        }
        let (appointment, expert) = appointments::certificate(&self.db, &self.key, caller, &id).await?;
        let today = self.today();
        let html = appointments::render_certificate(&appointment, &expert, today).into_bytes();
        let file = common::FileContent {
            file_name: format!("任用证书-{}.html", appointment.certificate_number),
            media_type: "text/html; charset=utf-8".into(),
            sha256: hex::encode(sha2::Sha256::digest(&html)),
            content: html,
        };
        Ok(Response::new(pb::GetCertificateResponse {
            file: Some(file),
            appointment: Some(ca::appointment_to_proto(&appointment, today)),
        }))
    }

    async fn suspend_expert(
        &self,
        request: Request<pb::SuspendExpertRequest>,
    ) -> Result<Response<pb::SuspendExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, SUSPEND_EXPERT, &message.request_id, &message)?;
        let change = ca::suspension(&message, self.today())?;
        let (expert, change) = self.status_change(&caller, &command, change).await?;
        Ok(Response::new(pb::SuspendExpertResponse { expert: Some(expert), change: Some(change) }))
    }

    async fn reinstate_expert(
        &self,
        request: Request<pb::ReinstateExpertRequest>,
    ) -> Result<Response<pb::ReinstateExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, REINSTATE_EXPERT, &message.request_id, &message)?;
        let change = ca::reinstatement(&message, self.today())?;
        let (expert, change) = self.status_change(&caller, &command, change).await?;
        Ok(Response::new(pb::ReinstateExpertResponse { expert: Some(expert), change: Some(change) }))
    }

    async fn retire_expert(
        &self,
        request: Request<pb::RetireExpertRequest>,
    ) -> Result<Response<pb::RetireExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RETIRE_EXPERT, &message.request_id, &message)?;
        let by_the_expert = caller.role == supervision_kit::Role::Expert;
        let change = ca::retirement(&message, self.clock.now(), self.today(), by_the_expert)?;
        let (expert, change) = self.status_change(&caller, &command, change).await?;
        Ok(Response::new(pb::RetireExpertResponse { expert: Some(expert), change: Some(change) }))
    }

    async fn terminate_expert(
        &self,
        request: Request<pb::TerminateExpertRequest>,
    ) -> Result<Response<pb::TerminateExpertResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, TERMINATE_EXPERT, &message.request_id, &message)?;
        let change = ca::termination(&message, self.today())?;
        if matches!(
            change.ground,
            crate::domain::StatusGround::Discipline | crate::domain::StatusGround::FalseMaterials
        ) {
            incidents::require_substantiated(&self.db, &change.expert_id, &change.incident_id).await?;
        }
        let (expert, change) = self.status_change(&caller, &command, change).await?;
        Ok(Response::new(pb::TerminateExpertResponse { expert: Some(expert), change: Some(change) }))
    }

    async fn list_status_changes(
        &self,
        request: Request<pb::ListStatusChangesRequest>,
    ) -> Result<Response<pb::ListStatusChangesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = ca::status_change_listing(request.get_ref())?;
        let (items, next) = appointments::list_changes(&self.db, caller, filter, &page).await?;
        Ok(Response::new(pb::ListStatusChangesResponse {
            changes: items.iter().map(ca::status_change_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn record_relation(
        &self,
        request: Request<pb::RecordRelationRequest>,
    ) -> Result<Response<pb::RecordRelationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_RELATION, &message.request_id, &message)?;
        let by_the_expert = caller.role == supervision_kit::Role::Expert;
        let new = cr::new_relation(&message, self.clock.now(), self.today(), by_the_expert)?;
        experts::require_own(&caller, &new.expert_id)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let relation = relations::record(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordRelationResponse { relation: Some(cr::relation_to_proto(&relation)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn end_relation(
        &self,
        request: Request<pb::EndRelationRequest>,
    ) -> Result<Response<pb::EndRelationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, END_RELATION, &message.request_id, &message)?;
        let end = cr::relation_end(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let relation = relations::end(claim.tx(), &self.db, &self.clock, &caller, &command, end).await?;
        let response = pb::EndRelationResponse { relation: Some(cr::relation_to_proto(&relation)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_relations(
        &self,
        request: Request<pb::ListRelationsRequest>,
    ) -> Result<Response<pb::ListRelationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filter, page) = cr::relation_listing(request.get_ref())?;
        let (items, next) = relations::list(&self.db, caller, filter, self.today(), &page).await?;
        Ok(Response::new(pb::ListRelationsResponse {
            relations: items.iter().map(cr::relation_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn record_conflict(
        &self,
        request: Request<pb::RecordConflictRequest>,
    ) -> Result<Response<pb::RecordConflictResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_CONFLICT, &message.request_id, &message)?;
        let new = cr::recusal(&message, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let relation = relations::record(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordConflictResponse { relation: Some(cr::relation_to_proto(&relation)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn query_conflicts(
        &self,
        request: Request<pb::QueryConflictsRequest>,
    ) -> Result<Response<pb::QueryConflictsResponse>, Status> {
        let query = cr::conflict_query(request.get_ref())?;
        let (items, next) = relations::query(&self.db, &self.reference, query).await?;
        Ok(Response::new(pb::QueryConflictsResponse {
            experts: items.iter().map(|(e, reasons)| cr::conflicted_to_proto(e, reasons)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_expiring_credentials(
        &self,
        request: Request<pb::ListExpiringCredentialsRequest>,
    ) -> Result<Response<pb::ListExpiringCredentialsResponse>, Status> {
        let (items, next) = lifecycle::expiring(&self.db, &self.clock, request.get_ref()).await?;
        Ok(Response::new(pb::ListExpiringCredentialsResponse { items, next_page_token: next.unwrap_or_default() }))
    }

    async fn record_yearly_acceptance(
        &self,
        request: Request<pb::RecordYearlyAcceptanceRequest>,
    ) -> Result<Response<pb::RecordYearlyAcceptanceResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_YEARLY_ACCEPTANCE, &message.request_id, &message)?;
        let new = lifecycle::yearly(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let response =
            lifecycle::record_yearly(claim.tx(), &self.db, &self.clock, &self.reference, &caller, &command, new)
                .await?;
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_yearly_acceptances(
        &self,
        request: Request<pb::ListYearlyAcceptancesRequest>,
    ) -> Result<Response<pb::ListYearlyAcceptancesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = lifecycle::list_yearly(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListYearlyAcceptancesResponse {
            acceptances: items,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_retirement_proposals(
        &self,
        request: Request<pb::ListRetirementProposalsRequest>,
    ) -> Result<Response<pb::ListRetirementProposalsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = lifecycle::list_proposals(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListRetirementProposalsResponse {
            proposals: items,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn decide_retirement_proposal(
        &self,
        request: Request<pb::DecideRetirementProposalRequest>,
    ) -> Result<Response<pb::DecideRetirementProposalResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, DECIDE_RETIREMENT_PROPOSAL, &message.request_id, &message)?;
        let decision = lifecycle::proposal_decision(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let (proposal, change) =
            lifecycle::decide_proposal(claim.tx(), &self.db, &self.clock, &caller, &command, decision).await?;
        let response = pb::DecideRetirementProposalResponse { proposal: Some(proposal), change };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn create_meeting(
        &self,
        request: Request<pb::CreateMeetingRequest>,
    ) -> Result<Response<pb::CreateMeetingResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_MEETING, &message.request_id, &message)?;
        let new = meetings::new_meeting(&message, &caller, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done = meetings::create_meeting(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::CreateMeetingResponse { meeting: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn record_meeting_attendance(
        &self,
        request: Request<pb::RecordMeetingAttendanceRequest>,
    ) -> Result<Response<pb::RecordMeetingAttendanceResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_MEETING_ATTENDANCE, &message.request_id, &message)?;
        let new = meetings::attendance(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done = meetings::record_attendance(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordMeetingAttendanceResponse { meeting: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn record_meeting_minutes(
        &self,
        request: Request<pb::RecordMeetingMinutesRequest>,
    ) -> Result<Response<pb::RecordMeetingMinutesResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_MEETING_MINUTES, &message.request_id, &message)?;
        let new = meetings::minutes(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done = meetings::record_minutes(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordMeetingMinutesResponse { meeting: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn create_training(
        &self,
        request: Request<pb::CreateTrainingRequest>,
    ) -> Result<Response<pb::CreateTrainingResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_TRAINING, &message.request_id, &message)?;
        let new = meetings::new_training(&message, &caller, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done = meetings::create_training(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::CreateTrainingResponse { training: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn record_training_attendance(
        &self,
        request: Request<pb::RecordTrainingAttendanceRequest>,
    ) -> Result<Response<pb::RecordTrainingAttendanceResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_TRAINING_ATTENDANCE, &message.request_id, &message)?;
        let new = meetings::training_attendance(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done =
            meetings::record_training_attendance(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordTrainingAttendanceResponse { training: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn record_publicity_activity(
        &self,
        request: Request<pb::RecordPublicityActivityRequest>,
    ) -> Result<Response<pb::RecordPublicityActivityResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_PUBLICITY_ACTIVITY, &message.request_id, &message)?;
        let new = meetings::new_activity(&message, &caller, self.clock.now(), self.today())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let done = meetings::record_activity(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordPublicityActivityResponse { activity: Some(done) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_meeting(
        &self,
        request: Request<pb::GetMeetingRequest>,
    ) -> Result<Response<pb::GetMeetingResponse>, Status> {
        let caller = Caller::of(&request)?;
        let meeting = meetings::get_meeting(&self.db, caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetMeetingResponse { meeting: Some(meeting) }))
    }

    async fn list_meetings(
        &self,
        request: Request<pb::ListMeetingsRequest>,
    ) -> Result<Response<pb::ListMeetingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = meetings::list_meetings(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListMeetingsResponse { meetings: items, next_page_token: next.unwrap_or_default() }))
    }

    async fn list_trainings(
        &self,
        request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = meetings::list_trainings(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListTrainingsResponse { trainings: items, next_page_token: next.unwrap_or_default() }))
    }

    async fn list_publicity_activities(
        &self,
        request: Request<pb::ListPublicityActivitiesRequest>,
    ) -> Result<Response<pb::ListPublicityActivitiesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = meetings::list_activities(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListPublicityActivitiesResponse {
            activities: items,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_yearly_compliance(
        &self,
        request: Request<pb::GetYearlyComplianceRequest>,
    ) -> Result<Response<pb::GetYearlyComplianceResponse>, Status> {
        let answer = meetings::yearly_compliance(&self.db, &self.clock, &self.reference, request.get_ref()).await?;
        Ok(Response::new(answer))
    }

    async fn record_incident(
        &self,
        request: Request<pb::RecordIncidentRequest>,
    ) -> Result<Response<pb::RecordIncidentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_INCIDENT, &message.request_id, &message)?;
        let new = incidents::new_incident(&message, &caller, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let incident = incidents::record(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordIncidentResponse { incident: Some(incident) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let incident = incidents::get(&self.db, caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetIncidentResponse { incident: Some(incident) }))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (items, next) = incidents::list(&self.db, caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListIncidentsResponse { incidents: items, next_page_token: next.unwrap_or_default() }))
    }

    async fn record_incident_statement(
        &self,
        request: Request<pb::RecordIncidentStatementRequest>,
    ) -> Result<Response<pb::RecordIncidentStatementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_INCIDENT_STATEMENT, &message.request_id, &message)?;
        let new = incidents::new_statement(&message, &caller, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let incident = incidents::add_statement(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::RecordIncidentStatementResponse { incident: Some(incident) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn decide_incident(
        &self,
        request: Request<pb::DecideIncidentRequest>,
    ) -> Result<Response<pb::DecideIncidentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, DECIDE_INCIDENT, &message.request_id, &message)?;
        let decision = incidents::decision(&message, self.today())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let (incident, change) =
            incidents::decide(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, decision).await?;
        let response = pb::DecideIncidentResponse { incident: Some(incident), change };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn upload_document(
        &self,
        request: Request<pb::UploadDocumentRequest>,
    ) -> Result<Response<pb::UploadDocumentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPLOAD_DOCUMENT, &message.request_id, &message)?;
        let new = documents::new_document(message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let document = documents::upload(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, new).await?;
        let response = pb::UploadDocumentResponse { document: Some(document) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::GetDocumentResponse>, Status> {
        let caller = Caller::of(&request)?;
        Ok(Response::new(documents::get(&self.db, &self.key, caller, &request.get_ref().id).await?))
    }

    async fn import_experts(
        &self,
        request: Request<pb::ImportExpertsRequest>,
    ) -> Result<Response<BoxStream<pb::ImportExpertsResponse>>, Status> {
        use pb::import_experts_response::Event;
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, IMPORT_EXPERTS, &message.request_id, &message)?;
        let wrap = |e: Result<pb::ImportResult, pb::ImportProgress>| pb::ImportExpertsResponse {
            event: Some(match e {
                Ok(result) => Event::Result(result),
                Err(progress) => Event::Progress(progress),
            }),
        };
        self.import_stream(
            caller,
            command,
            message.format,
            &message.content,
            message.validate_only,
            ImportKind::Experts,
            wrap,
        )
        .await
    }

    async fn import_institutions(
        &self,
        request: Request<pb::ImportInstitutionsRequest>,
    ) -> Result<Response<BoxStream<pb::ImportInstitutionsResponse>>, Status> {
        use pb::import_institutions_response::Event;
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, IMPORT_INSTITUTIONS, &message.request_id, &message)?;
        let wrap = |e: Result<pb::ImportResult, pb::ImportProgress>| pb::ImportInstitutionsResponse {
            event: Some(match e {
                Ok(result) => Event::Result(result),
                Err(progress) => Event::Progress(progress),
            }),
        };
        self.import_stream(
            caller,
            command,
            message.format,
            &message.content,
            message.validate_only,
            ImportKind::Institutions,
            wrap,
        )
        .await
    }

    async fn export_experts(
        &self,
        request: Request<pb::ExportExpertsRequest>,
    ) -> Result<Response<BoxStream<pb::ExportExpertsResponse>>, Status> {
        let caller = Caller::of(&request)?;
        let (format, file) =
            transfer::export_experts(&self.db, &self.clock, &self.key, caller, request.get_ref()).await?;
        let (extension, media_type) = sheets::file_type(format);
        let name = format!("experts-{}.{extension}", self.today().format("%Y%m%d"));
        let make =
            |file_name, media_type, chunk, sha256| pb::ExportExpertsResponse { file_name, media_type, chunk, sha256 };
        Ok(Response::new(export_stream(name, media_type, &file, make)))
    }

    async fn export_institutions(
        &self,
        request: Request<pb::ExportInstitutionsRequest>,
    ) -> Result<Response<BoxStream<pb::ExportInstitutionsResponse>>, Status> {
        let caller = Caller::of(&request)?;
        let (format, file) = transfer::export_institutions(&self.db, &self.clock, caller, request.get_ref()).await?;
        let (extension, media_type) = sheets::file_type(format);
        let name = format!("institutions-{}.{extension}", self.today().format("%Y%m%d"));
        let make = |file_name, media_type, chunk, sha256| pb::ExportInstitutionsResponse {
            file_name,
            media_type,
            chunk,
            sha256,
        };
        Ok(Response::new(export_stream(name, media_type, &file, make)))
    }

    async fn stream_draw_pool(
        &self,
        request: Request<pb::StreamDrawPoolRequest>,
    ) -> Result<Response<BoxStream<pb::StreamDrawPoolResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let pool = cr::pool_request(request.get_ref())?;
        let mut reader = relations::open_pool(&self.db, &self.clock, &self.reference, &caller, &pool).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            // A receiver gone (the caller hung up) ends the read.
            let to = &sender;
            let read = reader
                .send_batches(move |batch| {
                    let experts = batch.iter().map(cr::pool_expert_to_proto).collect();
                    let message = pb::StreamDrawPoolResponse { experts, ..Default::default() };
                    async move { to.send(Ok(message)).await.is_ok() }
                })
                .await;
            if let (Ok(()), Some(sync)) = (&read, &reader.sync) {
                for ids in sync.removed.chunks(relations::POOL_BATCH as usize) {
                    let message = pb::StreamDrawPoolResponse { removed_expert_ids: ids.to_vec(), ..Default::default() };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            let last = match read {
                Ok(()) => {
                    let mut end = pb::DrawPoolEnd {
                        expert_count: i32::try_from(reader.count).unwrap_or(i32::MAX),
                        as_of: Some(supervision_kit::convert::timestamp(reader.as_of)),
                        ..Default::default()
                    };
                    if let Some(sync) = &reader.sync {
                        end.version = sync.version.encode();
                        end.full = sync.full();
                        end.removed_count = i32::try_from(sync.removed.len()).unwrap_or(i32::MAX);
                        end.conflicts = sync.conflicts.iter().map(|(e, r)| cr::conflicted_to_proto(e, r)).collect();
                        end.scheduled_changes = reader
                            .scheduled_changes()
                            .into_iter()
                            .map(crate::convert::appointments::status_change_to_proto)
                            .collect();
                    }
                    Ok(pb::StreamDrawPoolResponse { end: Some(end), ..Default::default() })
                }
                Err(err) => Err(Status::from(err)),
            };
            let _ = sender.send(last).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn list_specialties(
        &self,
        request: Request<pb::ListSpecialtiesRequest>,
    ) -> Result<Response<pb::ListSpecialtiesResponse>, Status> {
        let r = request.get_ref();
        let mut v = supervision_kit::FieldViolations::new();
        let page = supervision_kit::Page::parse(
            r.page.as_ref(),
            "page",
            |t| supervision_kit::SpecialtyCode::parse(t).is_some(),
            &mut v,
        );
        let prefix = r.code_prefix.trim();
        if !prefix.is_empty() && supervision_kit::SpecialtyCode::parse(prefix).is_none() {
            v.add("code_prefix", "must be a group or occupation code: D, D-DD, D-DD-DD or D-DD-DD-DD, e.g. 4-07");
        }
        v.check()?;
        let list = self.reference.specialties();
        let found = list.list(prefix, r.name_contains.trim(), page.after.as_deref(), page.size as usize + 1);
        let (items, next) = page.finish(found, |(code, _)| (*code).to_owned());
        Ok(Response::new(pb::ListSpecialtiesResponse {
            specialties: items
                .into_iter()
                .map(|(code, name)| common::SpecialtyCode { code: code.to_owned(), name: name.to_owned() })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
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
