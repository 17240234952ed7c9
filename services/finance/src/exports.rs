//! Use cases of exports: each one transaction, rules from `domain`, SQL from `store`.

use sqlx::{Any, Transaction};
use supervision_kit::{
    Bureau, Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};

use crate::{
    domain::{ExportId, ExportKind, ExportRecord, FileEncoding, Ledger, LedgerQuery, export::sha256_hex},
    error::Error,
    store,
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
