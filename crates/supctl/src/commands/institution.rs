//! `supctl institution create|get|list|import|export`: the institutions of article 3.

use clap::{Subcommand, ValueEnum};
use supervision_kit::Bureau;
use supervision_proto::{
    common::PageRequest,
    registry::{
        CreateInstitutionRequest, GetInstitutionRequest, Institution, InstitutionType, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};

use crate::{
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    VocationalTrainingSchool,
    SkillLevelEvaluationOrganisation,
    CourseStandardProvider,
    QualificationAppraisalInstitution,
    SpecialAbilityAssessmentInstitution,
    HigherEducation,
    TechnicalSchool,
    VocationalCollege,
    EmploymentTrainingCentre,
    IndustryAssociationTrainingCentre,
    EnterpriseTrainingCentre,
    PracticalTrainingBase,
    TrainingBase,
    Studio,
    Other,
}

impl Kind {
    fn to_proto(self) -> InstitutionType {
        use InstitutionType as P;
        match self {
            Kind::VocationalTrainingSchool => P::VocationalTrainingSchool,
            Kind::SkillLevelEvaluationOrganisation => P::SkillLevelEvaluationOrganisation,
            Kind::CourseStandardProvider => P::CourseStandardProvider,
            Kind::QualificationAppraisalInstitution => P::QualificationAppraisalInstitution,
            Kind::SpecialAbilityAssessmentInstitution => P::SpecialAbilityAssessmentInstitution,
            Kind::HigherEducation => P::HigherEducation,
            Kind::TechnicalSchool => P::TechnicalSchool,
            Kind::VocationalCollege => P::VocationalCollege,
            Kind::EmploymentTrainingCentre => P::EmploymentTrainingCentre,
            Kind::IndustryAssociationTrainingCentre => P::IndustryAssociationTrainingCentre,
            Kind::EnterpriseTrainingCentre => P::EnterpriseTrainingCentre,
            Kind::PracticalTrainingBase => P::PracticalTrainingBase,
            Kind::TrainingBase => P::TrainingBase,
            Kind::Studio => P::Studio,
            Kind::Other => P::Other,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum InstitutionCommand {
    /// Registers an institution: a legal entity with --credit-code, or a sub-unit with --parent.
    Create {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        name: String,
        #[arg(long, conflicts_with = "parent")]
        credit_code: Option<String>,
        #[arg(long)]
        parent: Option<String>,
        /// County as a division code (440705) or name (新会区).
        #[arg(long)]
        county: String,
        #[arg(long, default_value = "")]
        address: String,
        #[arg(long, default_value = "")]
        head: String,
        /// Idempotency key; a retry with the same key returns the first answer.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one institution.
    Get { id: String },
    /// Lists institutions, oldest first.
    List {
        #[arg(long)]
        county: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Imports institutions from XLSX or CSV (docs/import-export.md); all or nothing.
    Import(super::import::ImportArgs),
    /// Exports institutions to XLSX or CSV.
    Export {
        #[command(flatten)]
        args: super::import::ExportArgs,
        /// County as a division code (440705) or name (新会区).
        #[arg(long)]
        county: Option<String>,
    },
}

pub async fn run(command: InstitutionCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let client = || anyhow::Ok(RegistryServiceClient::new(settings.authed("registry")?));
    match command {
        InstitutionCommand::Import(args) => {
            return super::import::import(super::import::Noun::Institutions, args, settings, out).await;
        }
        InstitutionCommand::Export { args, county } => {
            let filters = super::import::InstitutionFilters {
                county: county.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                status: 0,
            };
            return super::import::export_institutions(args, filters, settings, out).await;
        }
        InstitutionCommand::Create { kind, name, credit_code, parent, county, address, head, request_id } => {
            let request = CreateInstitutionRequest {
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                r#type: kind.to_proto() as i32,
                name,
                credit_code: credit_code.unwrap_or_default(),
                parent_id: parent.unwrap_or_default(),
                county: parse_bureau(&county)?.to_proto() as i32,
                address,
                head,
            };
            let created = client()?.create_institution(request).await?.into_inner().institution.unwrap_or_default();
            out.record(&to_json(&created));
        }
        InstitutionCommand::Get { id } => {
            let found = client()?.get_institution(GetInstitutionRequest { id }).await?.into_inner();
            out.record(&to_json(&found.institution.unwrap_or_default()));
        }
        InstitutionCommand::List { county, name, page_size, page_token } => {
            let request = ListInstitutionsRequest {
                page: Some(PageRequest { page_size, page_token }),
                county: county.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                r#type: 0,
                name_contains: name.unwrap_or_default(),
            };
            let page = client()?.list_institutions(request).await?.into_inner();
            let rows = page
                .institutions
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.name.clone(),
                        county_name(i.county),
                        kind_name(i.r#type),
                        i.credit_code.clone(),
                    ]
                })
                .collect();
            out.rows(&["id", "name", "county", "type", "credit code"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn county_name(value: i32) -> String {
    Bureau::from_proto(value).map(|b| b.to_string()).unwrap_or_default()
}

fn kind_name(value: i32) -> String {
    InstitutionType::try_from(value)
        .map(|t| t.as_str_name().trim_start_matches("INSTITUTION_TYPE_").to_owned())
        .unwrap_or_default()
}

fn to_json(i: &Institution) -> serde_json::Value {
    serde_json::json!({
        "id": i.id,
        "name": i.name,
        "type": kind_name(i.r#type),
        "credit_code": i.credit_code,
        "parent_id": i.parent_id,
        "county": county_name(i.county),
        "address": i.address,
        "head": i.head,
        "created": i.create_time.map(|t| chrono::DateTime::from_timestamp(t.seconds, 0).map(|d| d.to_rfc3339()).unwrap_or_default()).unwrap_or_default(),
    })
}
