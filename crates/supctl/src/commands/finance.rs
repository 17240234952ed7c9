//! `supctl fee|statement|batch|export|reconcile`: labour fees of article 10 for the bureaus'
//! finance staff (issue 8). Fee lines and monthly statements are read; payment batches are
//! drafted, submitted, approved (by another FINANCE user), rejected, cancelled and marked paid;
//! the bank payment file, the withholding-return data, an expert's yearly statement and the
//! ledger are written to a file; a payment month is reconciled. Amounts are shown in yuan.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use supervision_kit::Bureau;
use supervision_proto::{
    common::{Date, DateRange, FileContent, FileFormat, FundSource, Money, PageRequest, YearMonth},
    finance::{
        ApprovePaymentBatchRequest, CancelPaymentBatchRequest, CreatePaymentBatchRequest, Export,
        ExportBankPaymentFileRequest, ExportKind, ExportLedgerRequest, ExportWithholdingReturnRequest,
        ExportYearlyStatementRequest, FeeLine, FeeLineStatus, GetFeeLineRequest, GetMonthlyStatementRequest,
        GetPaymentBatchRequest, ListExportsRequest, ListFeeLinesRequest, ListMonthlyStatementsRequest,
        ListPaymentBatchesRequest, MarkPaymentBatchPaidRequest, MonthlyStatement, PaymentBatch, PaymentBatchStatus,
        ReconcileRequest, RejectPaymentBatchRequest, SubmitPaymentBatchRequest,
        finance_service_client::FinanceServiceClient,
    },
};

use crate::{
    commands::draw::time,
    output::Output,
    settings::{Settings, parse_bureau},
};

/// One of the two funds of article 10.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Fund {
    /// 省级促进就业创业发展专项资金—职业技能提升培训资金.
    Provincial,
    /// 市县两级就业创业专项资金.
    CityCounty,
}

impl Fund {
    fn to_proto(self) -> FundSource {
        match self {
            Fund::Provincial => FundSource::ProvincialSkillTraining,
            Fund::CityCounty => FundSource::CityCountyEmployment,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LineState {
    Open,
    InBatch,
    Paid,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BatchState {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    Paid,
}

fn line_state(s: LineState) -> FeeLineStatus {
    match s {
        LineState::Open => FeeLineStatus::Open,
        LineState::InBatch => FeeLineStatus::InBatch,
        LineState::Paid => FeeLineStatus::Paid,
    }
}

fn batch_state(s: BatchState) -> PaymentBatchStatus {
    match s {
        BatchState::Draft => PaymentBatchStatus::Draft,
        BatchState::Submitted => PaymentBatchStatus::Submitted,
        BatchState::Approved => PaymentBatchStatus::Approved,
        BatchState::Rejected => PaymentBatchStatus::Rejected,
        BatchState::Cancelled => PaymentBatchStatus::Cancelled,
        BatchState::Paid => PaymentBatchStatus::Paid,
    }
}

/// A file format for an export.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// CSV, UTF-8 (no byte-order mark).
    Csv,
    /// CSV, GB18030, as spreadsheet programs on Chinese Windows open it.
    CsvGb18030,
    /// Office Open XML workbook.
    Xlsx,
}

impl Format {
    fn to_proto(self) -> FileFormat {
        match self {
            Format::Csv => FileFormat::CsvUtf8,
            Format::CsvGb18030 => FileFormat::CsvGb18030,
            Format::Xlsx => FileFormat::Xlsx,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FeeCommand {
    /// Lists fee lines (charges and reversals) in the order written.
    List {
        /// Paying bureau as a division code (440705) or name (新会区).
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long)]
        expert: Option<String>,
        #[arg(long)]
        assignment: Option<String>,
        #[arg(long, value_enum)]
        fund: Option<Fund>,
        #[arg(long, value_enum)]
        status: Option<LineState>,
        /// First work date, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last work date, YYYY-MM-DD.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Shows one fee line.
    Get { line_id: String },
}

#[derive(Debug, Subcommand)]
pub enum StatementCommand {
    /// Shows an expert's statement for a paying bureau and payment month, with its lines.
    Get {
        expert_id: String,
        #[arg(long)]
        bureau: String,
        /// Payment month, YYYY-MM.
        #[arg(long)]
        month: String,
    },
    /// Lists monthly statements (without lines).
    List {
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        expert: Option<String>,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Drafts a batch of the bureau's open lines of one fund for a payment month.
    Create {
        #[arg(long)]
        bureau: String,
        /// Payment month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long, value_enum)]
        fund: Fund,
        /// Only lines worked from this day, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Only lines worked up to this day, YYYY-MM-DD (default: the month's last day).
        #[arg(long)]
        to: Option<String>,
        /// Idempotency key; a new one when omitted.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Submits a draft for approval.
    Submit {
        batch_id: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Approves a submitted batch (not its preparer; above the threshold a second approval by
    /// CITY_ADMIN or FINANCE_LEAD).
    Approve {
        batch_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Rejects a submitted batch; its lines open again.
    Reject {
        batch_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Cancels a draft; its lines open again.
    Cancel {
        batch_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Records that an approved batch was paid.
    Pay {
        batch_id: String,
        /// The bank's reference of the transfer.
        #[arg(long)]
        bank_reference: String,
        /// The day paid, YYYY-MM-DD.
        #[arg(long)]
        paid_date: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one batch with its payments.
    Get { batch_id: String },
    /// Lists batches, newest first.
    List {
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long)]
        month: Option<String>,
        #[arg(long, value_enum)]
        status: Option<BatchState>,
        #[arg(long, value_enum)]
        fund: Option<Fund>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// Where an export's file goes.
#[derive(Debug, Args)]
pub struct Target {
    /// Directory to write the file into (created if missing); the file keeps the service's name.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "xlsx")]
    format: Format,
    /// Idempotency key; a new one when omitted (a retry with the same key gives the same file).
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// The bank payment file of an approved or paid batch (names and accounts from the registry).
    BankFile {
        batch_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// The withholding-return data of a paying bureau's payment month (全员全额扣缴申报).
    WithholdingReturn {
        #[arg(long)]
        bureau: String,
        /// Payment month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[command(flatten)]
        target: Target,
    },
    /// An expert's yearly statement.
    YearlyStatement {
        expert_id: String,
        #[arg(long)]
        year: i32,
        /// Only payments by this bureau.
        #[arg(long)]
        bureau: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// The ledger by month, bureau and fund (CSV only).
    Ledger {
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, value_enum)]
        fund: Option<Fund>,
        /// First month, YYYY-MM.
        #[arg(long)]
        from: String,
        /// Last month, YYYY-MM.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        target: Target,
    },
    /// Lists the exports written (records only; files are not kept).
    List {
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// `supctl reconcile --bureau 440705 --month 2026-04`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[arg(long)]
    bureau: String,
    /// Payment month, YYYY-MM.
    #[arg(long)]
    month: String,
    /// Show every check, not only those that do not hold.
    #[arg(long)]
    all: bool,
}

type Client = FinanceServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::settings::Bearer>,
>;

fn client(settings: &Settings) -> anyhow::Result<Client> {
    Ok(FinanceServiceClient::new(settings.authed("finance")?))
}

fn request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn bureau_code(text: Option<&str>) -> anyhow::Result<i32> {
    Ok(text.map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32))
}

fn month(text: &str) -> anyhow::Result<YearMonth> {
    let parsed = text
        .split_once('-')
        .and_then(|(y, m)| Some(YearMonth { year: y.parse().ok()?, month: m.parse().ok()? }))
        .filter(|m| (1..=12).contains(&m.month));
    parsed.with_context(|| format!("{text} is not a month; use YYYY-MM"))
}

fn date(text: &str) -> anyhow::Result<Date> {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| format!("{text} is not YYYY-MM-DD"))?;
    Ok(supervision_kit::convert::date(d))
}

fn yuan(m: Option<Money>) -> String {
    let fen = m.map_or(0, |m| m.fen);
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

fn show_date(d: Option<Date>) -> String {
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default()
}

fn show_month(m: Option<YearMonth>) -> String {
    m.map(|m| format!("{:04}-{:02}", m.year, m.month)).unwrap_or_default()
}

fn bureau_name(value: i32) -> String {
    Bureau::from_proto(value).map(|b| b.division_code().to_owned()).unwrap_or_default()
}

fn enum_name(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_owned()).unwrap_or_default()
}

fn fund_name(value: i32) -> String {
    enum_name(FundSource::try_from(value).ok().map(|f| f.as_str_name()), "FUND_SOURCE_")
}

fn more(out: &Output, token: &str) {
    if !token.is_empty() && !out.is_json() {
        eprintln!("more: --page-token {token}");
    }
}

pub async fn run_fee(command: FeeCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings)?;
    match command {
        FeeCommand::Get { line_id } => {
            let line = client.get_fee_line(GetFeeLineRequest { id: line_id }).await?.into_inner().line;
            out.document(&line_json(&line.unwrap_or_default()));
        }
        FeeCommand::List { bureau, expert, assignment, fund, status, from, to, page_size, page_token } => {
            let work_dates = match (from, to) {
                (None, None) => None,
                (from, to) => Some(DateRange {
                    start: from.as_deref().map(date).transpose()?,
                    end: to.as_deref().map(date).transpose()?,
                }),
            };
            let request = ListFeeLinesRequest {
                page: Some(PageRequest { page_size, page_token }),
                paying_bureau: bureau_code(bureau.as_deref())?,
                expert_id: expert.unwrap_or_default(),
                assignment_id: assignment.unwrap_or_default(),
                fund_source: fund.map_or(0, |f| f.to_proto() as i32),
                status: status.map_or(0, |s| line_state(s) as i32),
                work_dates,
                ..Default::default()
            };
            let page = client.list_fee_lines(request).await?.into_inner();
            if out.is_json() {
                out.document(&serde_json::json!({
                    "lines": page.lines.iter().map(line_json).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                }));
            } else {
                let rows = page
                    .lines
                    .iter()
                    .map(|l| {
                        vec![
                            l.id.clone(),
                            l.assignment_id.clone(),
                            l.revision.to_string(),
                            l.expert_id.clone(),
                            format!(
                                "{} {}",
                                show_date(l.work_date),
                                enum_name(Some(l.half_day().as_str_name()), "HALF_DAY_")
                            ),
                            l.billable_class_hours.to_string(),
                            yuan(l.amount),
                            enum_name(Some(l.kind().as_str_name()), "FEE_LINE_KIND_"),
                            enum_name(Some(l.status().as_str_name()), "FEE_LINE_STATUS_"),
                            l.payment_batch_id.clone(),
                        ]
                    })
                    .collect();
                out.rows(
                    &["id", "assignment", "rev", "expert", "slot", "hours", "amount", "kind", "status", "batch"],
                    rows,
                );
                more(out, &page.next_page_token);
            }
        }
    }
    Ok(())
}

fn line_json(l: &FeeLine) -> serde_json::Value {
    serde_json::json!({
        "id": l.id,
        "assignment_id": l.assignment_id,
        "revision": l.revision,
        "task_id": l.task_id,
        "task_number": l.task_number,
        "expert_id": l.expert_id,
        "paying_bureau": bureau_name(l.paying_bureau),
        "fund_source": fund_name(l.fund_source),
        "work_date": show_date(l.work_date),
        "half_day": enum_name(Some(l.half_day().as_str_name()), "HALF_DAY_"),
        "minutes": l.minutes,
        "class_hours": l.class_hours,
        "billable_class_hours": l.billable_class_hours,
        "rate_yuan": yuan(l.rate),
        "amount_yuan": yuan(l.amount),
        "amount_fen": l.amount.map_or(0, |m| m.fen),
        "kind": enum_name(Some(l.kind().as_str_name()), "FEE_LINE_KIND_"),
        "reverses_line_id": l.reverses_line_id,
        "reversal_cause": enum_name(Some(l.reversal_cause().as_str_name()), "REVERSAL_CAUSE_"),
        "zero_reason": enum_name(Some(l.zero_reason().as_str_name()), "ZERO_REASON_"),
        "zero_detail": l.zero_detail,
        "edition_number": l.edition_number,
        "status": enum_name(Some(l.status().as_str_name()), "FEE_LINE_STATUS_"),
        "payment_batch_id": l.payment_batch_id,
        "created": time(l.create_time.map(|t| t.seconds)),
    })
}

pub async fn run_statement(command: StatementCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings)?;
    match command {
        StatementCommand::Get { expert_id, bureau, month: m } => {
            let request = GetMonthlyStatementRequest {
                expert_id,
                paying_bureau: bureau_code(Some(&bureau))?,
                payment_month: Some(month(&m)?),
            };
            let statement = client.get_monthly_statement(request).await?.into_inner().statement.unwrap_or_default();
            let mut json = statement_json(&statement);
            json["lines"] = statement.lines.iter().map(line_json).collect();
            out.document(&json);
        }
        StatementCommand::List { bureau, month: m, expert, page_size, page_token } => {
            let request = ListMonthlyStatementsRequest {
                page: Some(PageRequest { page_size, page_token }),
                paying_bureau: bureau_code(bureau.as_deref())?,
                payment_month: m.as_deref().map(month).transpose()?,
                expert_id: expert.unwrap_or_default(),
            };
            let page = client.list_monthly_statements(request).await?.into_inner();
            if out.is_json() {
                out.document(&serde_json::json!({
                    "statements": page.statements.iter().map(statement_json).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                }));
            } else {
                let rows = page
                    .statements
                    .iter()
                    .map(|s| {
                        vec![
                            show_month(s.payment_month),
                            bureau_name(s.paying_bureau),
                            s.expert_id.clone(),
                            yuan(s.gross),
                            yuan(s.tax),
                            yuan(s.net),
                        ]
                    })
                    .collect();
                out.rows(&["month", "bureau", "expert", "gross", "tax", "net"], rows);
                more(out, &page.next_page_token);
            }
        }
    }
    Ok(())
}

fn statement_json(s: &MonthlyStatement) -> serde_json::Value {
    let w = s.withholding.unwrap_or_default();
    serde_json::json!({
        "expert_id": s.expert_id,
        "paying_bureau": bureau_name(s.paying_bureau),
        "payment_month": show_month(s.payment_month),
        "gross_yuan": yuan(s.gross),
        "tax_yuan": yuan(s.tax),
        "net_yuan": yuan(s.net),
        "withholding": {
            "income_yuan": yuan(w.income),
            "deduction_yuan": yuan(w.deduction),
            "taxable_yuan": yuan(w.taxable),
            "rate_percent": w.rate_percent,
            "quick_deduction_yuan": yuan(w.quick_deduction),
            "tax_due_yuan": yuan(w.tax_due),
        },
        "payment_batch_ids": s.payment_batch_ids,
    })
}

pub async fn run_batch(command: BatchCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings)?;
    let batch = match command {
        BatchCommand::Create { bureau, month: m, fund, from, to, request_id: id } => {
            let work_dates = match (from, to) {
                (None, None) => None,
                (from, to) => Some(DateRange {
                    start: from.as_deref().map(date).transpose()?,
                    end: to.as_deref().map(date).transpose()?,
                }),
            };
            let request = CreatePaymentBatchRequest {
                request_id: request_id(id),
                paying_bureau: bureau_code(Some(&bureau))?,
                payment_month: Some(month(&m)?),
                fund_source: fund.to_proto() as i32,
                work_dates,
            };
            client.create_payment_batch(request).await?.into_inner().batch
        }
        BatchCommand::Submit { batch_id, request_id: id } => {
            let request = SubmitPaymentBatchRequest { request_id: request_id(id), batch_id };
            client.submit_payment_batch(request).await?.into_inner().batch
        }
        BatchCommand::Approve { batch_id, note, request_id: id } => {
            let request = ApprovePaymentBatchRequest { request_id: request_id(id), batch_id, note };
            client.approve_payment_batch(request).await?.into_inner().batch
        }
        BatchCommand::Reject { batch_id, reason, request_id: id } => {
            let request = RejectPaymentBatchRequest { request_id: request_id(id), batch_id, reason };
            client.reject_payment_batch(request).await?.into_inner().batch
        }
        BatchCommand::Cancel { batch_id, reason, request_id: id } => {
            let request = CancelPaymentBatchRequest { request_id: request_id(id), batch_id, reason };
            client.cancel_payment_batch(request).await?.into_inner().batch
        }
        BatchCommand::Pay { batch_id, bank_reference, paid_date, request_id: id } => {
            let request = MarkPaymentBatchPaidRequest {
                request_id: request_id(id),
                batch_id,
                bank_reference,
                paid_date: Some(date(&paid_date)?),
            };
            client.mark_payment_batch_paid(request).await?.into_inner().batch
        }
        BatchCommand::Get { batch_id } => {
            client.get_payment_batch(GetPaymentBatchRequest { id: batch_id }).await?.into_inner().batch
        }
        BatchCommand::List { bureau, month: m, status, fund, page_size, page_token } => {
            let request = ListPaymentBatchesRequest {
                page: Some(PageRequest { page_size, page_token }),
                paying_bureau: bureau_code(bureau.as_deref())?,
                payment_month: m.as_deref().map(month).transpose()?,
                status: status.map_or(0, |s| batch_state(s) as i32),
                fund_source: fund.map_or(0, |f| f.to_proto() as i32),
            };
            let page = client.list_payment_batches(request).await?.into_inner();
            if out.is_json() {
                out.document(&serde_json::json!({
                    "batches": page.batches.iter().map(batch_json).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                }));
            } else {
                let rows = page
                    .batches
                    .iter()
                    .map(|b| {
                        vec![
                            b.id.clone(),
                            bureau_name(b.paying_bureau),
                            show_month(b.payment_month),
                            fund_name(b.fund_source),
                            enum_name(Some(b.status().as_str_name()), "PAYMENT_BATCH_STATUS_"),
                            b.items.len().to_string(),
                            yuan(b.total_gross),
                            yuan(b.total_tax),
                            yuan(b.total_net),
                        ]
                    })
                    .collect();
                out.rows(&["id", "bureau", "month", "fund", "status", "experts", "gross", "tax", "net"], rows);
                more(out, &page.next_page_token);
            }
            return Ok(());
        }
    };
    out.document(&batch_json(&batch.unwrap_or_default()));
    Ok(())
}

fn batch_json(b: &PaymentBatch) -> serde_json::Value {
    let actor = |a: &Option<supervision_proto::common::Actor>| {
        a.as_ref().map(|a| format!("{} ({})", a.subject, a.role().as_str_name())).unwrap_or_default()
    };
    serde_json::json!({
        "id": b.id,
        "paying_bureau": bureau_name(b.paying_bureau),
        "payment_month": show_month(b.payment_month),
        "fund_source": fund_name(b.fund_source),
        "status": enum_name(Some(b.status().as_str_name()), "PAYMENT_BATCH_STATUS_"),
        "total_gross_yuan": yuan(b.total_gross),
        "total_tax_yuan": yuan(b.total_tax),
        "total_net_yuan": yuan(b.total_net),
        "requires_second_approval": b.requires_second_approval,
        "prepared_by": actor(&b.prepared_by),
        "approvals": b.approvals.iter().map(|a| format!(
            "{} by {}", enum_name(Some(a.level().as_str_name()), "APPROVAL_LEVEL_"), actor(&a.approver)
        )).collect::<Vec<_>>(),
        "items": b.items.iter().map(|i| serde_json::json!({
            "expert_id": i.expert_id,
            "lines": i.fee_line_ids.len(),
            "gross_yuan": yuan(i.gross),
            "tax_yuan": yuan(i.tax),
            "net_yuan": yuan(i.net),
        })).collect::<Vec<_>>(),
        "close_reason": b.close_reason,
        "bank_reference": b.bank_reference,
        "paid_date": show_date(b.paid_date),
        "created": time(b.create_time.map(|t| t.seconds)),
    })
}

/// Only the last component of a name the service chose, so it cannot write outside --out.
fn safe_name(given: &str, fallback: &str) -> String {
    Path::new(given).file_name().and_then(|n| n.to_str()).filter(|n| !n.is_empty()).unwrap_or(fallback).to_owned()
}

fn write_file(dir: &Path, file: Option<FileContent>, export: Option<Export>, out: &Output) -> anyhow::Result<()> {
    let file = file.context("the answer holds no file")?;
    let export = export.context("the answer holds no export record")?;
    let digest = {
        use sha2::Digest;
        hex_lower(&sha2::Sha256::digest(&file.content))
    };
    if digest != file.sha256 {
        bail!("the file received does not match its SHA-256 ({} != {})", digest, file.sha256);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(safe_name(&file.file_name, &format!("{}.bin", export.id)));
    std::fs::write(&path, &file.content).with_context(|| format!("cannot write {}", path.display()))?;
    out.document(&serde_json::json!({
        "file": path.display().to_string(),
        "export_id": export.id,
        "kind": enum_name(Some(export.kind().as_str_name()), "EXPORT_KIND_"),
        "rows": export.row_count,
        "total_yuan": yuan(export.total),
        "sha256": export.sha256,
        "size_bytes": export.size_bytes,
    }));
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn run_export(command: ExportCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings)?;
    match command {
        ExportCommand::BankFile { batch_id, target } => {
            let request = ExportBankPaymentFileRequest {
                request_id: request_id(target.request_id),
                batch_id,
                format: target.format.to_proto() as i32,
            };
            let r = client.export_bank_payment_file(request).await?.into_inner();
            write_file(&target.out, r.file, r.export, out)
        }
        ExportCommand::WithholdingReturn { bureau, month: m, target } => {
            let request = ExportWithholdingReturnRequest {
                request_id: request_id(target.request_id),
                paying_bureau: bureau_code(Some(&bureau))?,
                month: Some(month(&m)?),
                format: target.format.to_proto() as i32,
            };
            let r = client.export_withholding_return(request).await?.into_inner();
            write_file(&target.out, r.file, r.export, out)
        }
        ExportCommand::YearlyStatement { expert_id, year, bureau, target } => {
            let request = ExportYearlyStatementRequest {
                request_id: request_id(target.request_id),
                expert_id,
                year,
                paying_bureau: bureau_code(bureau.as_deref())?,
                format: target.format.to_proto() as i32,
            };
            let r = client.export_yearly_statement(request).await?.into_inner();
            write_file(&target.out, r.file, r.export, out)
        }
        ExportCommand::Ledger { bureau, fund, from, to, target } => {
            let request = ExportLedgerRequest {
                request_id: request_id(target.request_id),
                paying_bureau: bureau_code(bureau.as_deref())?,
                fund_source: fund.map_or(0, |f| f.to_proto() as i32),
                from_month: Some(month(&from)?),
                to_month: Some(month(&to)?),
                format: target.format.to_proto() as i32,
            };
            let r = client.export_ledger(request).await?.into_inner();
            write_file(&target.out, r.file, r.export, out)
        }
        ExportCommand::List { bureau, page_size, page_token } => {
            let request = ListExportsRequest {
                page: Some(PageRequest { page_size, page_token }),
                kind: ExportKind::Unspecified as i32,
                paying_bureau: bureau_code(bureau.as_deref())?,
            };
            let page = client.list_exports(request).await?.into_inner();
            let rows = page
                .exports
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone(),
                        enum_name(Some(e.kind().as_str_name()), "EXPORT_KIND_"),
                        bureau_name(e.paying_bureau),
                        e.file_name.clone(),
                        e.row_count.to_string(),
                        yuan(e.total),
                        e.sha256.clone(),
                        time(e.create_time.map(|t| t.seconds)),
                    ]
                })
                .collect();
            out.rows(&["id", "kind", "bureau", "file", "rows", "total", "sha256", "created"], rows);
            more(out, &page.next_page_token);
            Ok(())
        }
    }
}

/// Reconciles a payment month; exits non-zero (1) when a check does not hold.
pub async fn run_reconcile(args: ReconcileArgs, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings)?;
    let request =
        ReconcileRequest { paying_bureau: bureau_code(Some(&args.bureau))?, month: Some(month(&args.month)?) };
    let r = client.reconcile(request).await?.into_inner();
    let shown: Vec<_> = r.checks.iter().filter(|c| args.all || !c.ok).collect();
    if out.is_json() {
        out.document(&serde_json::json!({
            "balanced": r.balanced,
            "checks": r.checks.len(),
            "discrepancies": shown.iter().map(|c| serde_json::json!({
                "name": c.name,
                "ok": c.ok,
                "expected_yuan": yuan(c.expected),
                "actual_yuan": yuan(c.actual),
                "detail": c.detail,
            })).collect::<Vec<_>>(),
        }));
    } else {
        let rows = shown
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    if c.ok { "ok" } else { "DIFFERS" }.into(),
                    yuan(c.expected),
                    yuan(c.actual),
                    c.detail.clone(),
                ]
            })
            .collect();
        out.rows(&["check", "result", "expected", "actual", "detail"], rows);
        println!("{} checks, {}", r.checks.len(), if r.balanced { "balanced" } else { "NOT balanced" });
    }
    if !r.balanced {
        bail!("{} {} does not reconcile", args.bureau, args.month);
    }
    Ok(())
}
