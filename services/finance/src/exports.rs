//! Use cases of exports: each one transaction, rules from `domain`, SQL from `store`.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};
use supervision_kit::{
    Bureau, Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use tonic::Status;

use crate::{
    domain::{
        Batch, BatchId, ExportFormat, ExportId, ExportKind, ExportRecord, FileEncoding, Ledger, LedgerQuery,
        MonthIncome, Refusal, Table, YearMonth, YearRow, bank_file, export::sha256_hex, withholding_return,
        yearly_statement,
    },
    error::Error,
    registry::RegistryPeer,
    statements,
    store::{self, batches as batch_sql, fee_lines as lines_sql},
};

/// A written file and its record.
#[derive(Debug)]
pub struct Written {
    pub record: ExportRecord,
    pub bytes: Vec<u8>,
}

/// Writes the ledger for `query` inside `tx`, records the export and audits it. The ledger holds
/// amounts only, no personal data.
pub async fn write_ledger(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    query: LedgerQuery,
    encoding: FileEncoding,
) -> Result<Written, Error> {
    let rows = store::ledger_rows(&mut **tx, &query).await?;
    let ledger = Ledger { query, rows };
    let bytes = ledger.to_csv(encoding);
    let record = ExportRecord {
        id: ExportId::generate(),
        kind: ExportKind::Ledger,
        format: encoding.format_code().to_owned(),
        payment_batch_id: String::new(),
        bureau: ledger.query.bureau,
        month: format!("{}..{}", ledger.query.months.from, ledger.query.months.to),
        expert_id: String::new(),
        year: 0,
        file_name: ledger.file_name("csv"),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        sha256: sha256_hex(&bytes),
        row_count: i32::try_from(ledger.rows.len()).unwrap_or(i32::MAX),
        total_fen: ledger.total_fen(),
        created_by: caller.actor(),
        created_at: clock.now(),
    };
    store::insert_export(&mut **tx, &record).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "export",
        entity_id: record.id.as_str(),
        action: "create",
        before: None,
        after: Some(serde_json::json!({
            "kind": record.kind.code(),
            "format": record.format,
            "bureau": record.bureau.map(Bureau::division_code),
            "months": record.month,
            "sha256": record.sha256,
            "rows": record.row_count,
            "total_fen": record.total_fen,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(Written { record, bytes })
}

pub async fn list(
    db: &Db,
    kind: Option<ExportKind>,
    bureau: Option<Bureau>,
    page: &Page,
) -> Result<(Vec<ExportRecord>, Option<String>), Error> {
    let items = store::list_exports(db.pool(), kind, bureau, &page.probe()).await?;
    Ok(page.finish(items, |e| e.id.to_string()))
}

/// A file built from what finance holds and what the registry answered, before anything is
/// written: the handler builds it outside the write transaction (no network call holds the
/// database's write lock), then records it in the idempotency claim's transaction. A retry with
/// the same request id builds it again and must give the same bytes (same SHA-256).
#[derive(Debug)]
pub struct Prepared {
    pub record: ExportRecord,
    pub bytes: Vec<u8>,
    /// What the audit entry says about the file (no personal data).
    pub summary: serde_json::Value,
}

/// The `purpose` the registry's audit entry of each GetPayee names.
fn purpose(id: &ExportId, kind: ExportKind, command: &Command) -> String {
    format!("{id} {} (request {})", kind.code(), command.request_id)
}

fn refused(r: Refusal) -> Status {
    Error::Refused(r).into()
}

fn render(table: &Table, format: ExportFormat) -> Result<Vec<u8>, Status> {
    table.render(format).map_err(supervision_kit::internal)
}

#[allow(clippy::too_many_arguments)]
fn record_of(
    id: ExportId,
    kind: ExportKind,
    format: ExportFormat,
    file_stem: String,
    bytes: &[u8],
    table: &Table,
    total_fen: i64,
    caller: &Caller,
    clock: &SharedClock,
) -> ExportRecord {
    ExportRecord {
        id,
        kind,
        format: format.format_code().to_owned(),
        payment_batch_id: String::new(),
        bureau: None,
        month: String::new(),
        expert_id: String::new(),
        year: 0,
        file_name: format!("{file_stem}.{}", format.extension()),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        sha256: sha256_hex(bytes),
        row_count: i32::try_from(table.rows.len()).unwrap_or(i32::MAX),
        total_fen,
        created_by: caller.actor(),
        created_at: clock.now(),
    }
}

/// The bank payment file of an approved or paid batch of the caller's bureau: each expert's net
/// with the name and account the registry holds now. The totals row is the batch's net total.
pub async fn prepare_bank_file(
    db: &Db,
    clock: &SharedClock,
    registry: &RegistryPeer,
    caller: &Caller,
    command: &Command,
    batch_id: &BatchId,
    format: ExportFormat,
) -> Result<Prepared, Status> {
    let batch = batch_sql::get_batch(db.pool(), db.backend(), batch_id, false)
        .await?
        .ok_or_else(|| Error::BatchNotFound(batch_id.to_string()))?;
    caller.require_bureau(batch.bureau)?;
    if !batch.status.is_settled() {
        return Err(refused(Refusal::precondition(
            "BATCH_NOT_APPROVED",
            format!(
                "batch {} is {}: a bank file is written for an APPROVED or PAID batch",
                batch.id,
                batch.status.code()
            ),
        )));
    }
    let id = ExportId::generate();
    let why = purpose(&id, ExportKind::BankPaymentFile, command);
    let mut payees = BTreeMap::new();
    for item in batch.items.iter().filter(|i| i.net_fen > 0) {
        payees.insert(item.expert_id.clone(), registry.payee(caller, &item.expert_id, &why).await?);
    }
    let table = bank_file(&batch, &payees).map_err(refused)?;
    let bytes = render(&table, format)?;
    let stem = format!("银行代发-{}-{}-{}", batch.bureau.division_code(), batch.month, batch.id);
    let mut record =
        record_of(id, ExportKind::BankPaymentFile, format, stem, &bytes, &table, batch.total_net_fen(), caller, clock);
    record.payment_batch_id = batch.id.to_string();
    record.bureau = Some(batch.bureau);
    record.month = batch.month.key();
    let summary = serde_json::json!({ "payment_batch_id": batch.id.as_str(), "batch_status": batch.status.code() });
    Ok(Prepared { record, bytes, summary })
}

/// Each expert's income from `bureau` in payment month `month` (the month's approved and paid
/// batches, all funds), by expert.
pub fn month_incomes(settled: &[Batch]) -> Vec<MonthIncome> {
    statements::aggregate(settled, None)
        .into_values()
        .map(|s| MonthIncome {
            expert_id: s.expert_id,
            gross_fen: s.gross_fen,
            withheld_fen: s.tax_fen,
            withholding: s.withholding,
        })
        .collect()
}

/// The withholding-return data of the caller's bureau for a payment month.
#[allow(clippy::too_many_arguments)]
pub async fn prepare_withholding_return(
    db: &Db,
    clock: &SharedClock,
    registry: &RegistryPeer,
    caller: &Caller,
    command: &Command,
    bureau: Bureau,
    month: YearMonth,
    format: ExportFormat,
) -> Result<Prepared, Status> {
    caller.require_bureau(bureau)?;
    let settled = batch_sql::settled_in_month(db.pool(), bureau, month).await?;
    let incomes = month_incomes(&settled);
    if incomes.is_empty() {
        return Err(refused(Refusal::precondition(
            "NO_PAYMENTS",
            format!("bureau {} has no approved or paid batch in {month}", bureau.division_code()),
        )));
    }
    let id = ExportId::generate();
    let why = purpose(&id, ExportKind::WithholdingReturn, command);
    let mut payees = BTreeMap::new();
    for income in &incomes {
        payees.insert(income.expert_id.clone(), registry.payee(caller, &income.expert_id, &why).await?);
    }
    let table = withholding_return(bureau, month, &incomes, &payees).map_err(refused)?;
    let bytes = render(&table, format)?;
    let total: i64 = incomes.iter().map(|i| i.gross_fen).sum();
    let stem = format!("扣缴申报-{}-{month}", bureau.division_code());
    let mut record = record_of(id, ExportKind::WithholdingReturn, format, stem, &bytes, &table, total, caller, clock);
    record.bureau = Some(bureau);
    record.month = month.key();
    let withheld: i64 = incomes.iter().map(|i| i.withheld_fen).sum();
    let summary = serde_json::json!({
        "batches": settled.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        "withheld_fen": withheld,
    });
    Ok(Prepared { record, bytes, summary })
}

/// The rows of an expert's yearly statement: the year's approved and paid batches (of `bureau`
/// when given), by payment month, paying bureau and fund, with the tasks and class hours of the
/// lines paid.
pub async fn year_rows(db: &Db, expert_id: &str, bureau: Option<Bureau>, year: i32) -> Result<Vec<YearRow>, Status> {
    let settled = batch_sql::settled_in_year(db.pool(), bureau, year).await?;
    let mut rows: BTreeMap<(YearMonth, &'static str, String), YearRow> = BTreeMap::new();
    for batch in &settled {
        for item in batch.items.iter().filter(|i| i.expert_id == expert_id) {
            let key = (batch.month, batch.bureau.division_code(), batch.fund_source.clone());
            let row = rows.entry(key).or_insert_with(|| YearRow {
                month: batch.month,
                bureau: batch.bureau,
                fund_source: batch.fund_source.clone(),
                task_numbers: vec![],
                billable_class_hours: 0,
                gross_fen: 0,
                tax_fen: 0,
                net_fen: 0,
                batch_ids: vec![],
            });
            row.gross_fen += item.gross_fen;
            row.tax_fen += item.tax_fen;
            row.net_fen += item.net_fen;
            row.batch_ids.push(batch.id.to_string());
            for line in lines_sql::lines_of_batch(db.pool(), batch.id.as_str()).await? {
                if line.payer.expert_id != expert_id {
                    continue;
                }
                row.billable_class_hours += line.billable_class_hours;
                if !row.task_numbers.contains(&line.payer.task_number) {
                    row.task_numbers.push(line.payer.task_number.clone());
                }
            }
        }
    }
    Ok(rows.into_values().collect())
}

/// An expert's yearly statement, addressed with their name as the registry holds it.
#[allow(clippy::too_many_arguments)]
pub async fn prepare_yearly_statement(
    db: &Db,
    clock: &SharedClock,
    registry: &RegistryPeer,
    caller: &Caller,
    command: &Command,
    expert_id: &str,
    bureau: Option<Bureau>,
    year: i32,
    format: ExportFormat,
) -> Result<Prepared, Status> {
    let rows = year_rows(db, expert_id, bureau, year).await?;
    let id = ExportId::generate();
    let name = registry.name_of(caller, expert_id, &purpose(&id, ExportKind::YearlyStatement, command)).await?;
    let table = yearly_statement(&name, year, &rows);
    let bytes = render(&table, format)?;
    let gross: i64 = rows.iter().map(|r| r.gross_fen).sum();
    let who = bureau.map_or("全部付款单位".to_owned(), |b| b.division_code().to_owned());
    let stem = format!("劳务费年度明细-{expert_id}-{year}-{who}");
    let mut record = record_of(id, ExportKind::YearlyStatement, format, stem, &bytes, &table, gross, caller, clock);
    record.bureau = bureau;
    record.expert_id = expert_id.to_owned();
    record.year = year;
    let summary = serde_json::json!({ "rows": rows.len() });
    Ok(Prepared { record, bytes, summary })
}

/// Records a prepared export in the claim's transaction and audits it (the record, never the
/// file's personal data).
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    prepared: &Prepared,
) -> Result<(), Status> {
    let record = &prepared.record;
    store::insert_export(&mut **tx, record).await.map_err(Error::from)?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "export",
        entity_id: record.id.as_str(),
        action: "create",
        before: None,
        after: Some(serde_json::json!({
            "kind": record.kind.code(),
            "format": record.format,
            "bureau": record.bureau.map(Bureau::division_code),
            "month": record.month,
            "expert_id": record.expert_id,
            "year": record.year,
            "sha256": record.sha256,
            "rows": record.row_count,
            "total_fen": record.total_fen,
            "detail": prepared.summary,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    Ok(())
}

/// A retry of an export: the file built again must be the one first written, or the data behind
/// it changed (a batch approved since, a payee's account changed) and a new request is needed.
pub fn replayed(first_sha256: &str, again: &Prepared) -> Result<(), Status> {
    if again.record.sha256 == first_sha256 {
        return Ok(());
    }
    Err(refused(Refusal::precondition(
        "EXPORT_DATA_CHANGED",
        "the data behind this export changed since it was first written with this request_id \
         (a batch approved or a payee's details changed); send a new request_id for a new file",
    )))
}
