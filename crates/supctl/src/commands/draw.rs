//! `supctl draw show|list|export|verify|designate` (and, in `draw_run.rs`, `prepare|witness|execute|
//! abandon|void`): a draw's record (D18), its export for an auditor
//! who re-runs it with the PyPI package, a client-side recomputation with `supervision-draw`'s
//! `verify` that does not trust the service's own VerifyDraw, and a non-random designation of
//! experts (D15). A designation is not a random draw: `export` and `verify` say so and stop,
//! with a non-zero exit, rather than export or verify anything.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use supervision_draw::{DrawRecord, RecordedRank, verify};
use supervision_proto::{
    common::PageRequest,
    dispatch::{
        DesignateExpertsRequest, Draw, DrawKind, DrawStatus, ExportDrawRequest, GetDrawRequest, ListDrawsRequest,
        PickOutcome, dispatch_service_client::DispatchServiceClient,
    },
};

use crate::{
    commands::relation::code,
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Subcommand)]
pub enum DrawCommand {
    /// Shows one draw's record: ids and codes only.
    Show { draw_id: String },
    /// Lists draws, newest first: of a task, in a state, of a kind (`designation` lists D15's
    /// non-random designations), of a dispatching bureau.
    List {
        /// Only this task's draws (`tsk_...`).
        #[arg(long, default_value = "")]
        task: String,
        /// prepared, witnessed, executed, abandoned or voided.
        #[arg(long)]
        status: Option<String>,
        /// initial, supplementary or designation.
        #[arg(long)]
        kind: Option<String>,
        /// Dispatching bureau as a division code (440703) or name (蓬江区).
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Writes the exported record (JSON) and the frozen list, byte for byte, into --out.
    Export {
        draw_id: String,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Recomputes the draw here from its export and names every mismatch; non-zero exit if any.
    Verify { draw_id: String },
    /// Designates experts without a random draw (D15): only for a task with CITY_ADMIN's
    /// approved NON_RANDOM_DESIGNATION exception; D14's hard exclusions still apply.
    Designate {
        /// The task (`tsk_...`).
        #[arg(long)]
        task: String,
        /// An expert (`exp_...`), as many times as the team has places.
        #[arg(long = "expert", required = true)]
        experts: Vec<String>,
        /// Why these experts and not a draw.
        #[arg(long)]
        reason: String,
        /// The key of the call: give the one printed by a call whose outcome is unknown to retry
        /// it safely.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// prepare, witness, execute, abandon, void: running a random draw (`draw_run.rs`).
    #[command(flatten)]
    Run(crate::commands::draw_run::DrawRunCommand),
}

/// Stops `export` and `verify` on a designation: it is not a random draw, and nothing about it
/// can be re-run or verified.
fn refuse_designation(draw: &Draw, draw_id: &str) -> anyhow::Result<()> {
    if draw.kind == DrawKind::Designation as i32 {
        bail!(
            "draw {draw_id} is a non-random DESIGNATION (D15), not a random draw: its experts were designated with a \
             reason under the city's approval, and it has no frozen list, seed or order to export or verify; \
             `supctl draw show {draw_id}` prints its record"
        );
    }
    Ok(())
}

pub async fn run(command: DrawCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        DrawCommand::Run(command) => return crate::commands::draw_run::run(command, settings, out).await,
        DrawCommand::Show { draw_id } => {
            let draw = client.get_draw(GetDrawRequest { id: draw_id }).await?.into_inner().draw.unwrap_or_default();
            out.document(&to_json(&draw));
        }
        DrawCommand::List { task, status, kind, bureau, page_size, page_token } => {
            let request = ListDrawsRequest {
                page: Some(PageRequest { page_size, page_token }),
                task_id: task,
                status: status
                    .as_deref()
                    .map(|s| {
                        code(s, "DRAW_STATUS_", |n| DrawStatus::from_str_name(n).map(|v| v as i32), "a draw status")
                    })
                    .transpose()?
                    .unwrap_or_default(),
                kind: kind
                    .as_deref()
                    .map(|k| code(k, "DRAW_KIND_", |n| DrawKind::from_str_name(n).map(|v| v as i32), "a draw kind"))
                    .transpose()?
                    .unwrap_or_default(),
                dispatching_bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
            };
            let page = client.list_draws(request).await?.into_inner();
            if out.is_json() {
                out.document(&serde_json::json!({
                    "draws": page.draws.iter().map(to_json).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                }));
            } else {
                let rows = page
                    .draws
                    .iter()
                    .map(|d| {
                        let json = to_json(d);
                        let field = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
                        vec![d.id.clone(), d.task_id.clone(), field("kind"), field("status"), d.picks.len().to_string()]
                    })
                    .collect();
                out.rows(&["id", "task", "kind", "status", "picks"], rows);
                if !page.next_page_token.is_empty() {
                    eprintln!("more: --page-token {}", page.next_page_token);
                }
            }
        }
        DrawCommand::Export { draw_id, out: dir } => {
            let draw = client.get_draw(GetDrawRequest { id: draw_id.clone() }).await?.into_inner();
            refuse_designation(&draw.draw.unwrap_or_default(), &draw_id)?;
            let export = client.export_draw(ExportDrawRequest { draw_id: draw_id.clone() }).await?.into_inner();
            let record = export.record.context("the export holds no record")?;
            let list = export.candidate_list.context("the export holds no frozen list")?;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let record_path = dir.join(file_name(&record.file_name, &format!("{draw_id}.json")));
            let list_path = dir.join(file_name(&list.file_name, "frozen_list.txt"));
            std::fs::write(&record_path, &record.content)
                .with_context(|| format!("cannot write {}", record_path.display()))?;
            std::fs::write(&list_path, &list.content)
                .with_context(|| format!("cannot write {}", list_path.display()))?;
            let rerun = python_one_liner(&record_path, &list_path);
            if out.is_json() {
                out.document(&serde_json::json!({
                    "record": record_path.display().to_string(),
                    "frozen_list": list_path.display().to_string(),
                    "rerun": rerun,
                }));
            } else {
                println!("record:      {}", record_path.display());
                println!("frozen list: {}", list_path.display());
                println!("re-run with consistent-sampler 1.0.10 (pip install consistent-sampler==1.0.10):");
                println!("{rerun}");
            }
        }
        DrawCommand::Verify { draw_id } => {
            let draw = client.get_draw(GetDrawRequest { id: draw_id.clone() }).await?.into_inner();
            refuse_designation(&draw.draw.unwrap_or_default(), &draw_id)?;
            let export = client.export_draw(ExportDrawRequest { draw_id: draw_id.clone() }).await?.into_inner();
            let record = export.record.context("the export holds no record")?;
            let list = export.candidate_list.context("the export holds no frozen list")?;
            let json: serde_json::Value =
                serde_json::from_slice(&record.content).context("the exported record is not JSON")?;
            let draw_record = draw_record(&json, list.content)?;
            let verification = verify(&draw_record);
            let mismatches: Vec<String> = verification.mismatches.iter().map(ToString::to_string).collect();
            out.document(&serde_json::json!({
                "draw_id": draw_id,
                "verified": mismatches.is_empty(),
                "candidates": draw_record.candidate_count,
                "order": draw_record.order.len(),
                "mismatches": mismatches,
            }));
            if !mismatches.is_empty() {
                for m in &mismatches {
                    eprintln!("mismatch: {m}");
                }
                bail!("draw {draw_id} does not verify: {} mismatch(es)", mismatches.len());
            }
        }
        DrawCommand::Designate { task, experts, reason, request_id } => {
            let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let request =
                DesignateExpertsRequest { request_id: request_id.clone(), task_id: task, expert_ids: experts, reason };
            let response = match client.designate_experts(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) {
                        eprintln!(
                            "the call may or may not have been applied: repeat it with --request-id {request_id}"
                        );
                    }
                    return Err(status.into());
                }
            };
            out.document(&to_json(&response.draw.unwrap_or_default()));
        }
    }
    Ok(())
}

/// Only the last component of a name the service chose, so it cannot write outside --out.
fn file_name(given: &str, fallback: &str) -> String {
    std::path::Path::new(given)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(fallback)
        .to_owned()
}

/// The exported JSON record (docs/draw-algorithm.md) and the frozen list, as the verifier reads them.
fn draw_record(json: &serde_json::Value, frozen_list: Vec<u8>) -> anyhow::Result<DrawRecord> {
    let text = |key: &str| -> anyhow::Result<String> {
        json[key].as_str().map(str::to_owned).with_context(|| format!("the record has no string {key:?}"))
    };
    let strings = |key: &str| -> anyhow::Result<Vec<String>> {
        json[key]
            .as_array()
            .with_context(|| format!("the record has no list {key:?}"))?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).with_context(|| format!("a non-string in {key:?}")))
            .collect()
    };
    let order = json["order"]
        .as_array()
        .context("the record has no list \"order\"")?
        .iter()
        .map(|r| {
            Ok(RecordedRank {
                id: r["expert_id"].as_str().context("an order entry without expert_id")?.to_owned(),
                ticket: r["ticket"].as_str().map(str::to_owned),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dice = json["dice_digits"].as_str().unwrap_or_default();
    Ok(DrawRecord {
        frozen_list,
        frozen_list_sha256: text("frozen_list_sha256")?,
        candidate_count: usize::try_from(
            json["candidate_count"].as_u64().context("the record has no candidate_count")?,
        )?,
        commitment: text("seed_commitment")?,
        server_seed_hex: text("server_seed_hex")?,
        dice_digits: (!dice.is_empty()).then(|| dice.to_owned()),
        order,
        primaries: strings("primaries")?,
        backups: strings("backups")?,
        skipped: strings("skipped")?,
    })
}

/// A shell line that re-runs the draw from the two files with PyPI `consistent-sampler`.
fn python_one_liner(record: &std::path::Path, list: &std::path::Path) -> String {
    let script = format!(
        "import json,hashlib,consistent_sampler as cs; r=json.load(open('{record}')); b=open('{list}','rb').read(); \
         assert hashlib.sha256(b).hexdigest()==r['frozen_list_sha256']; \
         assert hashlib.sha256(bytes.fromhex(r['server_seed_hex'])).hexdigest()==r['seed_commitment']; \
         s=r['server_seed_hex']+(':'+r['dice_digits'] if r['dice_digits'] else ''); \
         ids=b.decode().split(chr(10))[:-1]; \
         o=[i for _,i,_ in cs.sampler(ids,seed=s,with_replacement=False)]; \
         print('order matches' if o==[e['expert_id'] for e in r['order']] else 'ORDER DIFFERS')",
        record = record.display(),
        list = list.display(),
    );
    format!("python3 -c \"{script}\"")
}

fn enum_name(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_owned()).unwrap_or_default()
}

/// A timestamp's seconds as RFC 3339, or empty.
pub fn time(seconds: Option<i64>) -> String {
    seconds.and_then(|s| chrono::DateTime::from_timestamp(s, 0)).map(|d| d.to_rfc3339()).unwrap_or_default()
}

/// The draw as JSON: ids, codes, hashes and the walk; no names (D18).
pub fn to_json(d: &Draw) -> serde_json::Value {
    let actor = |a: &Option<supervision_proto::common::Actor>| {
        a.as_ref().map(|a| format!("{} ({})", a.subject, a.role().as_str_name())).unwrap_or_default()
    };
    serde_json::json!({
        "id": d.id,
        "task_id": d.task_id,
        "kind": enum_name(DrawKind::try_from(d.kind).ok().map(|k| k.as_str_name()), "DRAW_KIND_"),
        "status": enum_name(DrawStatus::try_from(d.status).ok().map(|k| k.as_str_name()), "DRAW_STATUS_"),
        "supplements_draw_id": d.supplements_draw_id,
        "algorithm": d.algorithm,
        "edition_number": d.edition_number,
        "team_size": d.team_size,
        "backup_count": d.backup_count,
        "candidate_count": d.candidate_count,
        "candidate_list_sha256": d.candidate_list_sha256,
        "specialty_tier": d.specialty_tier,
        "seed_commitment": d.seed_commitment,
        "server_seed": d.server_seed,
        "dice_digits": d.dice_digits,
        "seed_string": d.seed_string,
        "operator": actor(&d.operator),
        "witness": actor(&d.witness),
        "prepared": time(d.prepare_time.map(|t| t.seconds)),
        "witnessed": time(d.witness_time.map(|t| t.seconds)),
        "executed": time(d.execute_time.map(|t| t.seconds)),
        "abandon_reason": d.abandon_reason,
        "random": d.kind != DrawKind::Designation as i32,
        "designation_reason": d.designation_reason,
        "picks": d.picks.iter().map(|p| serde_json::json!({
            "position": p.position,
            "expert_id": p.expert_id,
            "outcome": enum_name(PickOutcome::try_from(p.outcome).ok().map(|k| k.as_str_name()), "PICK_OUTCOME_"),
            "ticket": p.ticket,
            "assignment_id": p.assignment_id,
        })).collect::<Vec<_>>(),
    })
}
