//! Finance's synchronous calls to the registry (ARCHITECTURE.md "Calls between services"): the
//! civil-servant status of an expert on a work date, and a payee's identity and bank details
//! when an export needs them, asked with finance's own SERVICE token (`svc:finance`), for the
//! user the request acts for, with the W3C trace context. Payee details are used for the file
//! being written and never stored.

use chrono::NaiveDate;
use supervision_kit::{
    Caller,
    auth::{ACTOR_HEADER, AUTHORIZATION, encode_actor},
    client::{PeerTimeouts, deadline},
    convert::date,
    telemetry::PropagateTrace,
};
use supervision_proto::{
    common::{CivilServantStatus, IdentityDocumentType},
    registry::{GetCivilServantStatusRequest, GetPayeeRequest, registry_service_client::RegistryServiceClient},
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::Channel,
};

use crate::{domain::Payee, error::Error};

/// The registry as finance reaches it: absent when no endpoint or SERVICE token is configured, in
/// which case every question fails as UNAVAILABLE.
#[derive(Debug, Clone)]
pub struct RegistryPeer {
    connection: Option<(Channel, MetadataValue<Ascii>)>,
    /// The deadline of each call (`call`, `--peer-timeout-seconds`). Not retried here: the
    /// callers' outbox or client tries again.
    timeouts: PeerTimeouts,
}

impl RegistryPeer {
    pub fn new(channel: Option<Channel>, service_token: Option<&str>) -> Self {
        let bearer = service_token.and_then(|t| format!("Bearer {t}").parse().ok());
        Self { connection: channel.zip(bearer), timeouts: PeerTimeouts::default() }
    }

    /// The same peer with these deadlines.
    pub fn with_timeouts(mut self, timeouts: PeerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Whether `expert_id` was a civil servant (公务员) on `day`, per the registry's history. Any
    /// failure, the registry's refusals included, is [`Error::RegistryUnavailable`]: the caller's
    /// outbox tries again later.
    pub async fn is_civil_servant_on(&self, caller: &Caller, expert_id: &str, day: NaiveDate) -> Result<bool, Error> {
        let unavailable = |problem: String| Error::RegistryUnavailable(problem);
        let Some((channel, bearer)) = &self.connection else {
            return Err(unavailable("finance has no registry endpoint or SERVICE token configured".into()));
        };
        let calling = Calling { bearer: bearer.clone(), actor: encode_actor(&caller.actor()) };
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), calling);
        let mut request = tonic::Request::new(GetCivilServantStatusRequest {
            expert_id: expert_id.to_owned(),
            date: Some(date(day)),
        });
        request.set_timeout(self.timeouts.call);
        let asked = client.get_civil_servant_status(request);
        let answer = deadline(self.timeouts.call, "GetCivilServantStatus", asked)
            .await
            .map_err(|s| unavailable(format!("GetCivilServantStatus({day}): {:?} {}", s.code(), s.message())))?
            .into_inner();
        Ok(answer.status == CivilServantStatus::CivilServant as i32)
    }
}

impl RegistryPeer {
    /// An expert's payee details in full, for the export `purpose` names (the registry audits the
    /// read with it). A registry that answers masked values (finance's token is not `svc:finance`,
    /// or the acting user may not see them) is refused as [`Error::PayeeMasked`]: a file with
    /// masked accounts must never be written. A failure to answer is
    /// [`Error::RegistryUnavailable`].
    pub async fn payee(&self, caller: &Caller, expert_id: &str, purpose: &str) -> Result<Payee, Error> {
        let answer = self.get_payee(caller, expert_id, purpose).await?;
        let identity = answer.identity.unwrap_or_default();
        let Some(account) = answer.bank_account else {
            return Err(Error::PayeeIncomplete(format!("expert {expert_id} has no bank account in the registry")));
        };
        if identity.masked || account.masked {
            return Err(Error::PayeeMasked(expert_id.to_owned()));
        }
        let document_type = IdentityDocumentType::try_from(identity.r#type).unwrap_or_default();
        Ok(Payee {
            expert_id: expert_id.to_owned(),
            name: answer.name,
            identity_type: document_label(document_type).to_owned(),
            identity_number: identity.number,
            holder_name: account.holder_name,
            bank_name: account.bank_name,
            branch_name: account.branch_name,
            account_number: account.account_number,
        })
    }
}

impl RegistryPeer {
    /// An expert's name as on their identity document, for a statement addressed to them; the
    /// rest of the payee details are not used, masked or not.
    pub async fn name_of(&self, caller: &Caller, expert_id: &str, purpose: &str) -> Result<String, Error> {
        Ok(self.get_payee(caller, expert_id, purpose).await?.name)
    }

    async fn get_payee(
        &self,
        caller: &Caller,
        expert_id: &str,
        purpose: &str,
    ) -> Result<supervision_proto::registry::GetPayeeResponse, Error> {
        let Some((channel, bearer)) = &self.connection else {
            return Err(Error::RegistryUnavailable(
                "finance has no registry endpoint or SERVICE token configured".into(),
            ));
        };
        let calling = Calling { bearer: bearer.clone(), actor: encode_actor(&caller.actor()) };
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), calling);
        let mut request =
            tonic::Request::new(GetPayeeRequest { expert_id: expert_id.to_owned(), purpose: purpose.to_owned() });
        request.set_timeout(self.timeouts.call);
        match deadline(self.timeouts.call, "GetPayee", client.get_payee(request)).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => Err(Error::PayeeNotFound(expert_id.to_owned())),
            Err(s) => Err(Error::RegistryUnavailable(format!("GetPayee({expert_id}): {:?} {}", s.code(), s.message()))),
        }
    }
}

/// The document type as the withholding return (自然人电子税务局 扣缴客户端) names it.
fn document_label(t: IdentityDocumentType) -> &'static str {
    match t {
        IdentityDocumentType::ResidentIdCard => "居民身份证",
        IdentityDocumentType::PermanentResidenceCard => "外国人永久居留身份证",
        IdentityDocumentType::HmtResidencePermit => "港澳台居民居住证",
        IdentityDocumentType::HomeReturnPermit => "港澳居民来往内地通行证",
        IdentityDocumentType::TaiwanCompatriotPermit => "台湾居民来往大陆通行证",
        IdentityDocumentType::Passport => "护照",
        IdentityDocumentType::Unspecified => "",
    }
}

/// Finance's token, the acting user and the trace context on every call.
#[derive(Debug, Clone)]
struct Calling {
    bearer: MetadataValue<Ascii>,
    actor: Vec<u8>,
}

impl Interceptor for Calling {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        metadata.insert(AUTHORIZATION, self.bearer.clone());
        metadata.insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&self.actor));
        PropagateTrace.call(request)
    }
}
