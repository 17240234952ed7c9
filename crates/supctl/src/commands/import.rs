//! `supctl expert|institution import FILE` and `... export`: files of docs/import-export.md.
//! An import shows its progress on standard error as the registry streams it, then the result:
//! every bad row with its row number and column, nothing stored unless the whole file is good.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use sha2::Digest;
use supervision_proto::{
    common::FileFormat,
    registry::{
        ExportExpertsRequest, ExportInstitutionsRequest, ImportExpertsRequest, ImportInstitutionsRequest,
        ImportProgress, ImportResult, import_experts_response, import_institutions_response,
        registry_service_client::RegistryServiceClient,
    },
};

use crate::{output::Output, settings::Settings};

/// The file formats of an import or an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Office Open XML spreadsheet.
    Xlsx,
    /// CSV in UTF-8 (on import, the registry reads GB18030 too, whichever CSV format is named).
    Csv,
    /// CSV in GB18030, as spreadsheet programs on Chinese Windows write it.
    CsvGb18030,
}

impl Format {
    fn to_proto(self) -> FileFormat {
        match self {
            Format::Xlsx => FileFormat::Xlsx,
            Format::Csv => FileFormat::CsvUtf8,
            Format::CsvGb18030 => FileFormat::CsvGb18030,
        }
    }

    /// The format a file name suggests.
    fn of(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "xlsx" => Some(Format::Xlsx),
            "csv" | "txt" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// `import FILE`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: .xlsx, or .csv in UTF-8 or GB18030.
    pub file: PathBuf,
    /// The format, when the file name does not say it.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Check every row and report, but store nothing.
    #[arg(long)]
    pub validate_only: bool,
    /// Idempotency key; a retry with the same key answers the first result. A fresh one by default.
    #[arg(long)]
    pub request_id: Option<String>,
    /// No progress on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the file.
    #[arg(long)]
    pub file: PathBuf,
    /// The format; by default the file name's (.xlsx or .csv).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// What is imported or exported.
#[derive(Debug, Clone, Copy)]
pub enum Noun {
    Experts,
    Institutions,
}

fn format_for(path: &std::path::Path, given: Option<Format>) -> anyhow::Result<Format> {
    given
        .or_else(|| Format::of(path))
        .with_context(|| format!("cannot tell the format of {}; give --format", path.display()))
}

pub async fn import(noun: Noun, args: ImportArgs, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let format = format_for(&args.file, args.format)?.to_proto() as i32;
    let content = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let request_id = args.request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut client = RegistryServiceClient::new(settings.authed("registry")?).max_decoding_message_size(64 << 20);
    let show = !args.quiet;
    let started = std::time::Instant::now();
    let report = |p: &ImportProgress| {
        if show {
            eprintln!(
                "checked {}/{} rows, {} bad so far ({:.0} s)",
                p.rows_checked,
                p.rows_total,
                p.errors_so_far,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let mut result = None;
    match noun {
        Noun::Experts => {
            let request = ImportExpertsRequest {
                request_id: request_id.clone(),
                format,
                content,
                validate_only: args.validate_only,
            };
            let mut stream = client.import_experts(request).await?.into_inner();
            while let Some(message) = stream.message().await? {
                match message.event {
                    Some(import_experts_response::Event::Progress(p)) => report(&p),
                    Some(import_experts_response::Event::Result(r)) => result = Some(r),
                    None => {}
                }
            }
        }
        Noun::Institutions => {
            let request = ImportInstitutionsRequest {
                request_id: request_id.clone(),
                format,
                content,
                validate_only: args.validate_only,
            };
            let mut stream = client.import_institutions(request).await?.into_inner();
            while let Some(message) = stream.message().await? {
                match message.event {
                    Some(import_institutions_response::Event::Progress(p)) => report(&p),
                    Some(import_institutions_response::Event::Result(r)) => result = Some(r),
                    None => {}
                }
            }
        }
    }
    let result = result.context("the registry ended the import without a result")?;
    print_result(&result, &request_id, args.validate_only, out);
    if result.errors.is_empty() {
        Ok(())
    } else {
        Err(tonic::Status::invalid_argument(format!(
            "{} bad row(s); nothing was imported; fix them and send the whole file again",
            result.errors.len()
        ))
        .into())
    }
}

fn print_result(result: &ImportResult, request_id: &str, validate_only: bool, out: &Output) {
    if out.is_json() {
        let errors: Vec<serde_json::Value> = result
            .errors
            .iter()
            .map(|e| serde_json::json!({ "row": e.row, "column": e.column, "message": e.message }))
            .collect();
        out.document(&serde_json::json!({
            "import_id": result.import_id,
            "request_id": request_id,
            "committed": result.committed,
            "rows_total": result.rows_total,
            "rows_imported": result.rows_imported,
            "errors": errors,
        }));
        return;
    }
    if !result.errors.is_empty() {
        let rows = result.errors.iter().map(|e| vec![e.row.to_string(), e.column.clone(), e.message.clone()]).collect();
        out.rows(&["row", "column", "problem"], rows);
    }
    let outcome = if result.committed {
        format!("imported {} of {} rows", result.rows_imported, result.rows_total)
    } else if result.errors.is_empty() && validate_only {
        format!("all {} rows are good (checked only, nothing stored)", result.rows_total)
    } else {
        format!("{} rows checked, nothing imported", result.rows_total)
    };
    println!("{outcome} (import {}, request id {request_id})", result.import_id);
}

/// Filters of an expert export.
#[derive(Debug, Default)]
pub struct ExpertFilters {
    pub status: i32,
    pub county: i32,
}

/// Filters of an institution export.
#[derive(Debug, Default)]
pub struct InstitutionFilters {
    pub county: i32,
    pub status: i32,
}

pub async fn export_experts(
    args: ExportArgs,
    filters: ExpertFilters,
    settings: &Settings,
    out: &Output,
) -> anyhow::Result<()> {
    let format = format_for(&args.file, args.format)?.to_proto() as i32;
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    let request = ExportExpertsRequest { format, status: filters.status, county: filters.county, category: 0 };
    let mut stream = client.export_experts(request).await?.into_inner();
    let mut file = Vec::new();
    let mut digest = String::new();
    while let Some(m) = stream.message().await? {
        file.extend(m.chunk);
        if !m.sha256.is_empty() {
            digest = m.sha256;
        }
    }
    write_export(&args.file, &file, &digest, out)
}

pub async fn export_institutions(
    args: ExportArgs,
    filters: InstitutionFilters,
    settings: &Settings,
    out: &Output,
) -> anyhow::Result<()> {
    let format = format_for(&args.file, args.format)?.to_proto() as i32;
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    let request = ExportInstitutionsRequest { format, county: filters.county, r#type: 0, status: filters.status };
    let mut stream = client.export_institutions(request).await?.into_inner();
    let mut file = Vec::new();
    let mut digest = String::new();
    while let Some(m) = stream.message().await? {
        file.extend(m.chunk);
        if !m.sha256.is_empty() {
            digest = m.sha256;
        }
    }
    write_export(&args.file, &file, &digest, out)
}

/// Checks the file against the SHA-256 the registry sent, then writes it.
fn write_export(path: &std::path::Path, file: &[u8], digest: &str, out: &Output) -> anyhow::Result<()> {
    let actual = sha2::Sha256::digest(file).iter().map(|b| format!("{b:02x}")).collect::<String>();
    if actual != digest {
        anyhow::bail!("the export arrived damaged: SHA-256 {actual}, the registry sent {digest}; nothing written");
    }
    std::fs::write(path, file).with_context(|| format!("writing {}", path.display()))?;
    out.record(&serde_json::json!({
        "file": path.display().to_string(),
        "bytes": file.len(),
        "sha256": actual,
    }));
    Ok(())
}
