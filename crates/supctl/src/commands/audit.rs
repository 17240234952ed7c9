//! `supctl audit head|verify`: export a service's chain head for anchoring elsewhere, and
//! verify the whole chain on this side, so a tampered service cannot vouch for itself.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use supervision_kit::audit::{self, AuditHead, api};
use supervision_proto::common::{AuditEntry, AuditHead as PbHead, PageRequest};

use crate::{output::Output, settings::Settings};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Prints the head of a service's chain (keep it elsewhere as an anchor).
    Head {
        #[arg(long)]
        service: String,
    },
    /// Reads the whole chain of a service and checks every hash, link and sequence number, the
    /// service's head and, when given, a head anchored earlier (`supctl --output json audit head`).
    Verify {
        #[arg(long)]
        service: String,
        /// A JSON file written by `supctl --output json audit head` earlier.
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
}

pub async fn run(command: AuditCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    match command {
        AuditCommand::Head { service } => {
            let head = fetch_head(settings, &service).await?;
            out.record(&serde_json::json!({
                "service": head.service,
                "sequence": head.sequence,
                "entry_hash": head.entry_hash,
            }));
        }
        AuditCommand::Verify { service, anchor } => {
            let anchor = anchor.map(|path| read_anchor(&path)).transpose()?;
            // The entries first, the head after: every entry a service appends moves the head
            // in the same transaction, so an entry read before the head can lie beyond it only if
            // someone wrote it around the service. Writes landing while the pages are read are
            // covered by the later head, so a busy service does not look tampered with.
            let mut exported = fetch_entries(settings, &service).await?;
            let head = fetch_head(settings, &service).await?;
            if let Some(beyond) = exported.iter().find(|e| e.sequence > head.sequence) {
                bail!(
                    "audit chain of {service} is NOT intact: audit chain broken at entry {}: it lies beyond the head \
                     (entry {}), so it was inserted around the service",
                    beyond.sequence,
                    head.sequence
                );
            }
            exported.retain(|e| e.sequence <= head.sequence);
            let mut entries = Vec::with_capacity(exported.len());
            for e in &exported {
                let entry = api::from_proto(e).map_err(|problem| anyhow::anyhow!("entry {}: {problem}", e.sequence))?;
                if entry.canonical() != e.canonical {
                    bail!(
                        "audit chain of {service} broken at entry {}: exported fields differ from the hashed bytes",
                        e.sequence
                    );
                }
                entries.push(entry);
            }
            let verified = audit::verify(&entries, &api::head_from_proto(&head), anchor.as_ref())
                .with_context(|| format!("audit chain of {service} is NOT intact"))?;
            out.record(&serde_json::json!({
                "service": service,
                "entries": verified,
                "head_sequence": head.sequence,
                "head_hash": head.entry_hash,
                "anchored": anchor.is_some(),
                "result": "intact",
            }));
        }
    }
    Ok(())
}

fn read_anchor(path: &PathBuf) -> anyhow::Result<AuditHead> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let seq = value["sequence"].as_i64().context("the anchor has no sequence")?;
    let hash = value["entry_hash"].as_str().context("the anchor has no entry_hash")?.to_owned();
    Ok(AuditHead { seq, hash })
}

/// Calls `$method` on the client of `$service`, each service having its own copies of the audit
/// request and response messages (same shape, per-package names).
macro_rules! on_service {
    ($settings:expr, $service:expr, |$client:ident, $pkg:ident| $call:expr) => {
        match $service {
            "registry" => {
                use supervision_proto::registry as $pkg;
                let mut $client =
                    $pkg::registry_service_client::RegistryServiceClient::new($settings.authed("registry")?);
                $call
            }
            "recruitment" => {
                use supervision_proto::recruitment as $pkg;
                let mut $client =
                    $pkg::recruitment_service_client::RecruitmentServiceClient::new($settings.authed("recruitment")?);
                $call
            }
            "dispatch" => {
                use supervision_proto::dispatch as $pkg;
                let mut $client =
                    $pkg::dispatch_service_client::DispatchServiceClient::new($settings.authed("dispatch")?);
                $call
            }
            "finance" => {
                use supervision_proto::finance as $pkg;
                let mut $client = $pkg::finance_service_client::FinanceServiceClient::new($settings.authed("finance")?);
                $call
            }
            other => bail!("unknown service {other}; one of registry, recruitment, dispatch, finance"),
        }
    };
}

async fn fetch_head(settings: &Settings, service: &str) -> anyhow::Result<PbHead> {
    let head = on_service!(settings, service, |client, pb| {
        client.get_audit_head(pb::GetAuditHeadRequest {}).await?.into_inner().head
    });
    head.context("the service answered without a head")
}

async fn fetch_entries(settings: &Settings, service: &str) -> anyhow::Result<Vec<AuditEntry>> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = Some(PageRequest { page_size: 500, page_token: token.clone() });
        let (entries, next) = on_service!(settings, service, |client, pb| {
            let r = client
                .list_audit_entries(pb::ListAuditEntriesRequest { page, ..Default::default() })
                .await?
                .into_inner();
            (r.entries, r.next_page_token)
        });
        all.extend(entries);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}
