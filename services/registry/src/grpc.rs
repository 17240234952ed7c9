//! Thin handlers of `supervision.registry.v1.RegistryService`: convert, call a use case, convert back.

use supervision_kit::Db;
use supervision_proto::registry::{self as pb, registry_service_server::RegistryService};
use tonic::{Request, Response, Status};

use crate::{convert, institutions};

#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
}

impl Registry {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn create_institution(
        &self,
        request: Request<pb::CreateInstitutionRequest>,
    ) -> Result<Response<pb::CreateInstitutionResponse>, Status> {
        let new = convert::new_institution(request.into_inner())?;
        let institution = institutions::create(&self.db, new).await?;
        Ok(Response::new(pb::CreateInstitutionResponse {
            institution: Some(convert::institution_to_proto(institution)),
        }))
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
}
