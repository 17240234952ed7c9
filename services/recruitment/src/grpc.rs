//! Thin handlers of `supervision.recruitment.v1.RecruitmentService`.

use chrono::NaiveDate;
use supervision_kit::{
    Caller, Db, Role, SharedClock, audit,
    idempotency::{self, Begun, Command},
    personal::PersonalDataKey,
};
use supervision_proto::recruitment::{self as pb, recruitment_service_server::RecruitmentService};
use supervision_reference::{Reference, shanghai_today};
use tonic::{Request, Response, Status};

use crate::{
    applications, appointments, calls, convert,
    convert::applications as ca,
    domain::{Application, Visibility},
    publicity, reapplication, renewals,
};

const CREATE_CALL: &str = "/supervision.recruitment.v1.RecruitmentService/CreateCall";
const UPDATE_CALL: &str = "/supervision.recruitment.v1.RecruitmentService/UpdateCall";
const RECORD_CALL_PUBLICATION: &str = "/supervision.recruitment.v1.RecruitmentService/RecordCallPublication";
const CLOSE_CALL: &str = "/supervision.recruitment.v1.RecruitmentService/CloseCall";
const CANCEL_CALL: &str = "/supervision.recruitment.v1.RecruitmentService/CancelCall";
const CREATE_APPLICATION: &str = "/supervision.recruitment.v1.RecruitmentService/CreateApplication";
const UPDATE_APPLICATION: &str = "/supervision.recruitment.v1.RecruitmentService/UpdateApplication";
const UPLOAD_MATERIAL: &str = "/supervision.recruitment.v1.RecruitmentService/UploadMaterial";
const SUBMIT_APPLICATION: &str = "/supervision.recruitment.v1.RecruitmentService/SubmitApplication";
const WITHDRAW_APPLICATION: &str = "/supervision.recruitment.v1.RecruitmentService/WithdrawApplication";
const REMOVE_MATERIAL: &str = "/supervision.recruitment.v1.RecruitmentService/RemoveMaterial";
const RECORD_REVIEW: &str = "/supervision.recruitment.v1.RecruitmentService/RecordReview";
const ACKNOWLEDGE_REAPPLICATION_WARNING: &str =
    "/supervision.recruitment.v1.RecruitmentService/AcknowledgeReapplicationWarning";
const CONCLUDE_REVIEW: &str = "/supervision.recruitment.v1.RecruitmentService/ConcludeReview";
const CREATE_PUBLICITY_BATCH: &str = "/supervision.recruitment.v1.RecruitmentService/CreatePublicityBatch";
const PUBLISH_PUBLICITY_BATCH: &str = "/supervision.recruitment.v1.RecruitmentService/PublishPublicityBatch";
const RECORD_OBJECTION: &str = "/supervision.recruitment.v1.RecruitmentService/RecordObjection";
const RESOLVE_OBJECTION: &str = "/supervision.recruitment.v1.RecruitmentService/ResolveObjection";
const START_RENEWAL: &str = "/supervision.recruitment.v1.RecruitmentService/StartRenewal";
const CONFIRM_RENEWAL: &str = "/supervision.recruitment.v1.RecruitmentService/ConfirmRenewal";
const RECORD_RENEWAL_CHECK: &str = "/supervision.recruitment.v1.RecruitmentService/RecordRenewalCheck";
const DECIDE_RENEWAL: &str = "/supervision.recruitment.v1.RecruitmentService/DecideRenewal";
const DECIDE_APPOINTMENTS: &str = "/supervision.recruitment.v1.RecruitmentService/DecideAppointments";

/// Drafts and cancelled drafts are the city bureau's working papers (article 7(一) publishes the
/// call, not its drafts): only city roles and auditors see them; everyone else sees a call once
/// it is public.
fn sees_public_calls_only(caller: &Caller) -> bool {
    !matches!(caller.role, Role::CityAdmin | Role::CityReviewer | Role::CityOperator | Role::Auditor)
}

#[derive(Debug, Clone)]
pub struct Recruitment {
    db: Db,
    clock: SharedClock,
    /// Encrypts, indexes and decrypts applicants' personal data.
    key: PersonalDataKey,
    reference: Reference,
    /// The registry, asked at submission about the applicant's past (D21); none without peers.
    registry: Option<reapplication::RegistryPeer>,
}

impl Recruitment {
    pub fn new(
        db: Db,
        clock: SharedClock,
        key: PersonalDataKey,
        reference: Reference,
        registry: Option<reapplication::RegistryPeer>,
    ) -> Self {
        Self { db, clock, key, reference, registry }
    }

    /// An application as `caller` may see it, with its appointment and re-application check.
    async fn shown(&self, caller: &Caller, application: &Application) -> Result<pb::Application, Status> {
        let mut shown = self.application_for(caller, application);
        appointments::stamp(&self.db, &mut shown).await?;
        reapplication::stamp(&self.db, caller, &mut shown).await?;
        Ok(shown)
    }

    fn today(&self) -> NaiveDate {
        shanghai_today(&self.clock)
    }

    /// Runs a call transition idempotently.
    async fn call_command<R: prost::Message + Default>(
        &self,
        command: &Command,
        run: impl AsyncFnOnce(&mut idempotency::Claim) -> Result<crate::domain::Call, crate::error::Error>,
        wrap: impl FnOnce(pb::Call) -> R,
    ) -> Result<R, Status> {
        let mut claim = match idempotency::begin(&self.db, &self.clock, command).await? {
            Begun::Replay(response) => return Ok(response),
            Begun::Fresh(claim) => claim,
        };
        let call = run(&mut claim).await?;
        let response = wrap(convert::call_to_proto(call));
        claim.finish(&response).await?;
        Ok(response)
    }

    /// An application as `caller` may see it.
    fn application_for(&self, caller: &Caller, application: &Application) -> pb::Application {
        ca::application_to_proto(application, applications::visibility(caller, application))
    }

    /// The answer to a replayed command about an application. Stored answers keep personal
    /// data masked (the idempotency table must not hold plain numbers), so the replay reads the
    /// application again and shows it as `caller` may see it.
    async fn replayed(&self, caller: &Caller, stored: Option<pb::Application>) -> Result<pb::Application, Status> {
        let id = ca::application_id(&stored.map(|a| a.id).unwrap_or_default(), "application_id")?;
        let application = applications::get(&self.db, &self.key, caller, &id).await?;
        self.shown(caller, &application).await
    }
}

/// A stored (masked) answer and the caller's view of an application.
fn stored_and_shown(caller: &Caller, application: &Application) -> (pb::Application, pb::Application) {
    (
        ca::application_to_proto(application, Visibility::Masked),
        ca::application_to_proto(application, applications::visibility(caller, application)),
    )
}

#[tonic::async_trait]
impl RecruitmentService for Recruitment {
    async fn create_call(
        &self,
        request: Request<pb::CreateCallRequest>,
    ) -> Result<Response<pb::CreateCallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_CALL, &message.request_id, &message)?;
        let details = convert::new_call(message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let call = calls::create(claim.tx(), &self.db, &self.clock, &caller, &command, details).await?;
        let response = pb::CreateCallResponse { call: Some(convert::call_to_proto(call)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn update_call(
        &self,
        request: Request<pb::UpdateCallRequest>,
    ) -> Result<Response<pb::UpdateCallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPDATE_CALL, &message.request_id, &message)?;
        let (id, new, paths) = calls::update_request(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let call = calls::update(claim.tx(), &self.db, &self.clock, &caller, &command, &id, new, &paths).await?;
        let response = pb::UpdateCallResponse { call: Some(convert::call_to_proto(call)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_call(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        let public_only = sees_public_calls_only(Caller::of(&request)?);
        let id = convert::call_id(&request.get_ref().id, "id")?;
        let call = calls::get(&self.db, &id, public_only).await?;
        Ok(Response::new(pb::GetCallResponse { call: Some(convert::call_to_proto(call)) }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        let public_only = sees_public_calls_only(Caller::of(&request)?);
        let (mut filter, page) = convert::call_listing(request.get_ref())?;
        filter.public_only = public_only;
        let (items, next) = calls::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListCallsResponse {
            calls: items.into_iter().map(convert::call_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn record_call_publication(
        &self,
        request: Request<pb::RecordCallPublicationRequest>,
    ) -> Result<Response<pb::RecordCallPublicationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_CALL_PUBLICATION, &message.request_id, &message)?;
        let (id, publication) = convert::new_publication(&message, self.today())?;
        let response = self
            .call_command(
                &command,
                async |claim| {
                    calls::record_publication(
                        claim.tx(),
                        &self.db,
                        &self.clock,
                        &self.reference,
                        &caller,
                        &command,
                        &id,
                        publication,
                    )
                    .await
                },
                |call| pb::RecordCallPublicationResponse { call: Some(call) },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn close_call(
        &self,
        request: Request<pb::CloseCallRequest>,
    ) -> Result<Response<pb::CloseCallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CLOSE_CALL, &message.request_id, &message)?;
        let (id, reason) = convert::call_and_reason(&message.call_id, &message.reason)?;
        let response = self
            .call_command(
                &command,
                async |claim| {
                    calls::end(claim.tx(), &self.db, &self.clock, &caller, &command, &id, reason, false).await
                },
                |call| pb::CloseCallResponse { call: Some(call) },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn cancel_call(
        &self,
        request: Request<pb::CancelCallRequest>,
    ) -> Result<Response<pb::CancelCallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CANCEL_CALL, &message.request_id, &message)?;
        let (id, reason) = convert::call_and_reason(&message.call_id, &message.reason)?;
        let response = self
            .call_command(
                &command,
                async |claim| calls::end(claim.tx(), &self.db, &self.clock, &caller, &command, &id, reason, true).await,
                |call| pb::CancelCallResponse { call: Some(call) },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn get_call_compliance(
        &self,
        request: Request<pb::GetCallComplianceRequest>,
    ) -> Result<Response<pb::GetCallComplianceResponse>, Status> {
        let year = convert::compliance_year(request.get_ref().year)?;
        let compliance = calls::compliance(&self.db, &self.reference, year, self.today()).await?;
        Ok(Response::new(convert::compliance_to_proto(compliance)))
    }

    async fn create_application(
        &self,
        request: Request<pb::CreateApplicationRequest>,
    ) -> Result<Response<pb::CreateApplicationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_APPLICATION, &message.request_id, &message)?;
        let new = ca::new_application(&message, applications::is_staff_entry(&caller), self.clock.now(), self.today())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::CreateApplicationResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::CreateApplicationResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let application =
            applications::create(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, new).await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::CreateApplicationResponse { application: Some(stored) }).await?;
        // As a replay shows it (appointment and re-application stamps), so both answers agree.
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::CreateApplicationResponse { application: Some(shown) }))
    }

    async fn update_application(
        &self,
        request: Request<pb::UpdateApplicationRequest>,
    ) -> Result<Response<pb::UpdateApplicationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPDATE_APPLICATION, &message.request_id, &message)?;
        let update = ca::application_update(&message, applications::is_staff_entry(&caller), self.clock.now())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::UpdateApplicationResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::UpdateApplicationResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let application =
            applications::update(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, update, self.today())
                .await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::UpdateApplicationResponse { application: Some(stored) }).await?;
        // As a replay shows it (appointment and re-application stamps), so both answers agree.
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::UpdateApplicationResponse { application: Some(shown) }))
    }

    async fn upload_material(
        &self,
        request: Request<pb::UploadMaterialRequest>,
    ) -> Result<Response<pb::UploadMaterialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPLOAD_MATERIAL, &message.request_id, &message)?;
        let new = ca::new_material(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let material =
            applications::upload(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, new).await?;
        let response = pb::UploadMaterialResponse { material: Some(ca::material_to_proto(&material)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn remove_material(
        &self,
        request: Request<pb::RemoveMaterialRequest>,
    ) -> Result<Response<pb::RemoveMaterialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, REMOVE_MATERIAL, &message.request_id, &message)?;
        let id = ca::material_id(&message.material_id, "material_id")?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let material =
            applications::remove_material(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, &id).await?;
        let response = pb::RemoveMaterialResponse { material: Some(ca::material_to_proto(&material)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_material(
        &self,
        request: Request<pb::GetMaterialRequest>,
    ) -> Result<Response<pb::GetMaterialResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = ca::material_id(&request.get_ref().id, "id")?;
        let (material, content) = applications::get_material(&self.db, &self.key, caller, &id).await?;
        Ok(Response::new(pb::GetMaterialResponse { material: Some(ca::material_to_proto(&material)), content }))
    }

    async fn submit_application(
        &self,
        request: Request<pb::SubmitApplicationRequest>,
    ) -> Result<Response<pb::SubmitApplicationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, SUBMIT_APPLICATION, &message.request_id, &message)?;
        let (id, version, on_behalf) =
            ca::submission(&message, applications::is_staff_entry(&caller), self.clock.now())?;
        // D21: the registry is asked before the transaction opens. A retry of a submission that
        // already committed replays its answer first, so it does not depend on the registry.
        if self.registry.is_some() {
            match idempotency::begin(&self.db, &self.clock, &command).await? {
                Begun::Replay(stored) => {
                    let stored: pb::SubmitApplicationResponse = stored;
                    let application = self.replayed(&caller, stored.application).await?;
                    return Ok(Response::new(pb::SubmitApplicationResponse { application: Some(application) }));
                }
                // Not run before: give the key back (the claim rolls back) while the registry
                // is asked; it is claimed again below.
                Begun::Fresh(claim) => drop(claim),
            }
        }
        let check = match &self.registry {
            Some(peer) => {
                let draft = applications::get(&self.db, &self.key, &caller, &id).await?;
                let identity = ca::profile_to_proto(&draft.profile, Visibility::Full).identity.unwrap_or_default();
                Some(reapplication::ask(peer, &caller.actor(), identity, self.today()).await?)
            }
            None => None,
        };
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::SubmitApplicationResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::SubmitApplicationResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let application = applications::submit(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &caller,
            &command,
            &id,
            version,
            on_behalf,
        )
        .await?;
        if let Some(check) = &check {
            reapplication::record_check(claim.tx(), &self.db, &self.clock, &caller, &command, &id, check).await?;
        }
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::SubmitApplicationResponse { application: Some(stored) }).await?;
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::SubmitApplicationResponse { application: Some(shown) }))
    }

    async fn withdraw_application(
        &self,
        request: Request<pb::WithdrawApplicationRequest>,
    ) -> Result<Response<pb::WithdrawApplicationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, WITHDRAW_APPLICATION, &message.request_id, &message)?;
        let (id, reason, on_behalf) =
            ca::withdrawal(&message, applications::is_staff_entry(&caller), self.clock.now())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::WithdrawApplicationResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::WithdrawApplicationResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let application = applications::withdraw(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &caller,
            &command,
            &id,
            reason,
            on_behalf,
        )
        .await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::WithdrawApplicationResponse { application: Some(stored) }).await?;
        // As a replay shows it (appointment and re-application stamps), so both answers agree.
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::WithdrawApplicationResponse { application: Some(shown) }))
    }

    async fn record_review(
        &self,
        request: Request<pb::RecordReviewRequest>,
    ) -> Result<Response<pb::RecordReviewResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_REVIEW, &message.request_id, &message)?;
        let (id, inputs) = ca::review(&message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::RecordReviewResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::RecordReviewResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        let application =
            applications::record_review(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, &id, inputs)
                .await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::RecordReviewResponse { application: Some(stored) }).await?;
        // As a replay shows it (appointment and re-application stamps), so both answers agree.
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::RecordReviewResponse { application: Some(shown) }))
    }

    async fn acknowledge_reapplication_warning(
        &self,
        request: Request<pb::AcknowledgeReapplicationWarningRequest>,
    ) -> Result<Response<pb::AcknowledgeReapplicationWarningResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ACKNOWLEDGE_REAPPLICATION_WARNING, &message.request_id, &message)?;
        let (id, note) = reapplication::acknowledgement(&message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::AcknowledgeReapplicationWarningResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::AcknowledgeReapplicationWarningResponse {
                    application: Some(application),
                }));
            }
            Begun::Fresh(claim) => claim,
        };
        reapplication::acknowledge(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, &id, &note).await?;
        let stored = pb::AcknowledgeReapplicationWarningResponse {
            application: Some(pb::Application { id: id.to_string(), ..Default::default() }),
        };
        claim.finish(&stored).await?;
        let application = applications::get(&self.db, &self.key, &caller, &id).await?;
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::AcknowledgeReapplicationWarningResponse { application: Some(shown) }))
    }

    async fn conclude_review(
        &self,
        request: Request<pb::ConcludeReviewRequest>,
    ) -> Result<Response<pb::ConcludeReviewResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CONCLUDE_REVIEW, &message.request_id, &message)?;
        let (id, outcome, reason) = ca::conclusion(&message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::ConcludeReviewResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::ConcludeReviewResponse { application: Some(application) }));
            }
            Begun::Fresh(claim) => claim,
        };
        if outcome == crate::domain::Outcome::Passed {
            reapplication::require_acknowledged(claim.tx(), &id).await?;
        }
        let application = applications::conclude_review(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &caller,
            &command,
            &id,
            outcome,
            reason,
        )
        .await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim.finish(&pb::ConcludeReviewResponse { application: Some(stored) }).await?;
        // As a replay shows it (appointment and re-application stamps), so both answers agree.
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::ConcludeReviewResponse { application: Some(shown) }))
    }

    async fn get_application(
        &self,
        request: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::GetApplicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = ca::application_id(&request.get_ref().id, "id")?;
        let application = applications::get(&self.db, &self.key, caller, &id).await?;
        let shown = self.shown(caller, &application).await?;
        Ok(Response::new(pb::GetApplicationResponse { application: Some(shown) }))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (mut filter, identity, page) = ca::application_listing(request.get_ref(), self.today())?;
        filter.identity_index = identity.map(|doc| crate::store::applications::identity_index(&self.key, &doc));
        let (items, next) = applications::list(&self.db, &self.key, caller, filter, &page).await?;
        let mut shown = Vec::with_capacity(items.len());
        for a in &items {
            shown.push(self.shown(caller, a).await?);
        }
        Ok(Response::new(pb::ListApplicationsResponse {
            applications: shown,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn create_publicity_batch(
        &self,
        request: Request<pb::CreatePublicityBatchRequest>,
    ) -> Result<Response<pb::CreatePublicityBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_PUBLICITY_BATCH, &message.request_id, &message)?;
        let new = publicity::new_batch(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let batch = publicity::create_batch(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.reference,
            &self.key,
            &caller,
            &command,
            new,
            self.today(),
        )
        .await?;
        let response = pb::CreatePublicityBatchResponse { batch: Some(batch.to_proto(self.clock.now())) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn publish_publicity_batch(
        &self,
        request: Request<pb::PublishPublicityBatchRequest>,
    ) -> Result<Response<pb::PublishPublicityBatchResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, PUBLISH_PUBLICITY_BATCH, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let batch = publicity::publish_batch(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &caller,
            &command,
            &message,
            self.today(),
        )
        .await?;
        let response = pb::PublishPublicityBatchResponse { batch: Some(batch.to_proto(self.clock.now())) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_publicity_batch(
        &self,
        request: Request<pb::GetPublicityBatchRequest>,
    ) -> Result<Response<pb::GetPublicityBatchResponse>, Status> {
        let id = publicity::batch_id(&request.get_ref().id, "id")?;
        let batch = publicity::get_batch(&self.db, &id).await?;
        Ok(Response::new(pb::GetPublicityBatchResponse { batch: Some(batch.to_proto(self.clock.now())) }))
    }

    async fn list_publicity_batches(
        &self,
        request: Request<pb::ListPublicityBatchesRequest>,
    ) -> Result<Response<pb::ListPublicityBatchesResponse>, Status> {
        let r = request.get_ref();
        let mut v = supervision_kit::FieldViolations::new();
        let page = supervision_kit::Page::parse(
            r.page.as_ref(),
            "page",
            |t| supervision_kit::vocab::is_prefixed_id(t, "pbt_"),
            &mut v,
        );
        let status = match pb::PublicityBatchStatus::try_from(r.status) {
            Ok(pb::PublicityBatchStatus::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                v.add("status", "is not a publicity batch status");
                None
            }
        };
        v.check()?;
        let (batches, next) = publicity::list_batches(&self.db, &self.clock, status, &page).await?;
        let now = self.clock.now();
        Ok(Response::new(pb::ListPublicityBatchesResponse {
            batches: batches.iter().map(|b| b.to_proto(now)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn render_publicity_notice(
        &self,
        request: Request<pb::RenderPublicityNoticeRequest>,
    ) -> Result<Response<pb::RenderPublicityNoticeResponse>, Status> {
        let r = request.get_ref();
        let id = publicity::batch_id(&r.batch_id, "batch_id")?;
        let format = supervision_proto::common::FileFormat::try_from(r.format).unwrap_or_default();
        let file = publicity::render_notice(&self.db, &self.key, &id, format).await?;
        Ok(Response::new(pb::RenderPublicityNoticeResponse { file: Some(file) }))
    }

    async fn record_objection(
        &self,
        request: Request<pb::RecordObjectionRequest>,
    ) -> Result<Response<pb::RecordObjectionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_OBJECTION, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let objection =
            publicity::record_objection(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, &message)
                .await?;
        let response = pb::RecordObjectionResponse { objection: Some(objection) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn resolve_objection(
        &self,
        request: Request<pb::ResolveObjectionRequest>,
    ) -> Result<Response<pb::ResolveObjectionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RESOLVE_OBJECTION, &message.request_id, &message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(stored) => {
                let stored: pb::ResolveObjectionResponse = stored;
                let application = self.replayed(&caller, stored.application).await?;
                return Ok(Response::new(pb::ResolveObjectionResponse {
                    objection: stored.objection,
                    application: Some(application),
                }));
            }
            Begun::Fresh(claim) => claim,
        };
        let (objection, application) =
            publicity::resolve_objection(claim.tx(), &self.db, &self.clock, &self.key, &caller, &command, &message)
                .await?;
        let (stored, _) = stored_and_shown(&caller, &application);
        claim
            .finish(&pb::ResolveObjectionResponse { objection: Some(objection.clone()), application: Some(stored) })
            .await?;
        let shown = self.shown(&caller, &application).await?;
        Ok(Response::new(pb::ResolveObjectionResponse { objection: Some(objection), application: Some(shown) }))
    }

    async fn decide_appointments(
        &self,
        request: Request<pb::DecideAppointmentsRequest>,
    ) -> Result<Response<pb::DecideAppointmentsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, DECIDE_APPOINTMENTS, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let decisions = publicity::decide_appointments(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.key,
            &caller,
            &command,
            &message,
            self.today(),
        )
        .await?;
        let response = pb::DecideAppointmentsResponse { decisions };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_objection(
        &self,
        request: Request<pb::GetObjectionRequest>,
    ) -> Result<Response<pb::GetObjectionResponse>, Status> {
        let id = publicity::objection_id(&request.get_ref().id, "id")?;
        let objection = publicity::get_objection(&self.db, &id).await?;
        Ok(Response::new(pb::GetObjectionResponse { objection: Some(objection) }))
    }

    async fn list_objections(
        &self,
        request: Request<pb::ListObjectionsRequest>,
    ) -> Result<Response<pb::ListObjectionsResponse>, Status> {
        let (objections, next) = publicity::list_objections(&self.db, request.get_ref()).await?;
        Ok(Response::new(pb::ListObjectionsResponse { objections, next_page_token: next.unwrap_or_default() }))
    }

    async fn list_appointment_decisions(
        &self,
        request: Request<pb::ListAppointmentDecisionsRequest>,
    ) -> Result<Response<pb::ListAppointmentDecisionsResponse>, Status> {
        let filter = appointments::decision_filter(request.get_ref())?;
        let (decisions, next) = appointments::list_decisions(&self.db, &filter).await?;
        Ok(Response::new(pb::ListAppointmentDecisionsResponse { decisions, next_page_token: next.unwrap_or_default() }))
    }

    async fn start_renewal(
        &self,
        request: Request<pb::StartRenewalRequest>,
    ) -> Result<Response<pb::StartRenewalResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, START_RENEWAL, &message.request_id, &message)?;
        let initiator = renewals::start_request(&caller, &message, self.clock.now())?;
        let today = self.today();
        // The registry is asked before the transaction opens.
        let term = renewals::running_term(self.registry.as_ref(), &caller.actor(), &message.expert_id, today).await?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let renewal = renewals::start(
            claim.tx(),
            &self.db,
            &self.clock,
            &self.reference,
            &caller,
            &command,
            &message,
            initiator,
            &term,
            today,
        )
        .await?;
        let response = pb::StartRenewalResponse { renewal: Some(renewal) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn confirm_renewal(
        &self,
        request: Request<pb::ConfirmRenewalRequest>,
    ) -> Result<Response<pb::ConfirmRenewalResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CONFIRM_RENEWAL, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let renewal =
            renewals::confirm(claim.tx(), &self.db, &self.clock, &caller, &command, &message, self.today()).await?;
        let response = pb::ConfirmRenewalResponse { renewal: Some(renewal) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn record_renewal_check(
        &self,
        request: Request<pb::RecordRenewalCheckRequest>,
    ) -> Result<Response<pb::RecordRenewalCheckResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_RENEWAL_CHECK, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let renewal =
            renewals::record_check(claim.tx(), &self.db, &self.clock, &caller, &command, &message, self.today())
                .await?;
        let response = pb::RecordRenewalCheckResponse { renewal: Some(renewal) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn decide_renewal(
        &self,
        request: Request<pb::DecideRenewalRequest>,
    ) -> Result<Response<pb::DecideRenewalResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, DECIDE_RENEWAL, &message.request_id, &message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let renewal =
            renewals::decide(claim.tx(), &self.db, &self.clock, &caller, &command, &message, self.today()).await?;
        let response = pb::DecideRenewalResponse { renewal: Some(renewal) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_renewal(
        &self,
        request: Request<pb::GetRenewalRequest>,
    ) -> Result<Response<pb::GetRenewalResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = renewals::renewal_id(&request.get_ref().id, "id")?;
        let renewal = renewals::get(&self.db, caller, &id, self.today()).await?;
        Ok(Response::new(pb::GetRenewalResponse { renewal: Some(renewal) }))
    }

    async fn list_renewals(
        &self,
        request: Request<pb::ListRenewalsRequest>,
    ) -> Result<Response<pb::ListRenewalsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (renewals, next) = renewals::list(&self.db, caller, request.get_ref(), self.today()).await?;
        Ok(Response::new(pb::ListRenewalsResponse { renewals, next_page_token: next.unwrap_or_default() }))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "recruitment").await?;
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
