//! `supctl token issue`: a signed token for a person or a service.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use supervision_kit::{Role, auth::TokenRequest};

use crate::{
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a token signed with the configured private key.
    Issue {
        /// CITY_ADMIN, CITY_REVIEWER, CITY_OPERATOR, COUNTY_OPERATOR, FINANCE, FINANCE_LEAD,
        /// AUDITOR, EXPERT, APPLICANT or SERVICE.
        #[arg(long)]
        role: String,
        /// Bureau of a scoped role, as a division code (440705) or name (新会区).
        #[arg(long)]
        bureau: Option<String>,
        /// Who the token speaks for: a staff login, or `svc:dispatch` for a service. Required,
        /// because audit entries name it and "someone other than" rules compare it.
        #[arg(long)]
        subject: String,
        /// Expert id of an EXPERT token.
        #[arg(long)]
        expert_id: Option<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 8)]
        hours: u64,
    },
}

pub fn run(command: TokenCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let TokenCommand::Issue { role, bureau, subject, expert_id, hours } = command;
    let role = Role::from_code(&role.to_uppercase()).with_context(|| format!("unknown role {role}"))?;
    let bureau = bureau.as_deref().map(parse_bureau).transpose()?;
    let request = TokenRequest { subject, role, bureau, expert_id, ttl: Duration::from_secs(hours * 3600) };
    let token = settings.issuer()?.issue(&request, chrono::Utc::now())?;
    // A bare token on stdout, so `export SUPCTL_TOKEN=$(supctl token issue ...)` works.
    if out.is_json() {
        out.record(&serde_json::json!({ "token": token }));
    } else {
        println!("{token}");
    }
    Ok(())
}
