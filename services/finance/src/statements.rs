//! Monthly statements (issue 8 item 2; D9, DOMAIN.md 10.11): per expert and paying bureau per
//! payment month, across funds, from the month's approved and paid batches — gross, withheld,
//! net, the latest withholding computation and the lines behind the figures.

use std::collections::BTreeMap;

use supervision_kit::{Bureau, Caller, Db, Page, Role};
use tonic::Status;

use crate::{
    domain::{Batch, FeeLine, WithholdingRecord, YearMonth},
    error::Error,
    store::{
        batches as sql,
        fee_lines::{self as lines_sql, LineFilter},
    },
};

/// An expert's statement for one paying bureau and payment month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub expert_id: String,
    pub bureau: Bureau,
    pub month: YearMonth,
    pub gross_fen: i64,
    pub tax_fen: i64,
    pub net_fen: i64,
    /// The withholding of the month's latest approved payment.
    pub withholding: WithholdingRecord,
    pub batch_ids: Vec<String>,
    pub lines: Vec<FeeLine>,
}

impl Statement {
    /// The page token of a statement: month, expert, bureau.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.month.key(), self.expert_id, self.bureau.division_code())
    }
}

/// Whether `token` is a statement key.
pub fn is_key(token: &str) -> bool {
    let parts: Vec<&str> = token.split('|').collect();
    parts.len() == 3 && YearMonth::parse_key(parts[0]).is_some() && Bureau::from_division_code(parts[2]).is_some()
}

/// What a listing asks for, already limited to the caller's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementFilter {
    pub bureau: Option<Bureau>,
    pub month: Option<YearMonth>,
    pub expert_id: Option<String>,
}

/// Refuses an EXPERT who asks for another expert's statement, and a FINANCE user who asks for
/// another bureau's; gives an EXPERT their own when they name nobody.
pub fn scope_expert(caller: &Caller, expert_id: Option<String>) -> Result<Option<String>, Status> {
    if caller.role != Role::Expert {
        return Ok(expert_id);
    }
    let own = caller.expert_id.clone().unwrap_or_default();
    match expert_id {
        Some(e) if e != own => Err(Status::permission_denied("an expert sees their own statements only")),
        _ => Ok(Some(own)),
    }
}

/// Sums the settled batches into statements, ordered by month, expert and bureau.
pub fn aggregate(batches: &[Batch], expert: Option<&str>) -> BTreeMap<(YearMonth, String, &'static str), Statement> {
    let mut out: BTreeMap<(YearMonth, String, &'static str), Statement> = BTreeMap::new();
    for batch in batches {
        for item in batch.items.iter().filter(|i| expert.is_none_or(|e| e == i.expert_id)) {
            let key = (batch.month, item.expert_id.clone(), batch.bureau.division_code());
            let s = out.entry(key).or_insert_with(|| Statement {
                expert_id: item.expert_id.clone(),
                bureau: batch.bureau,
                month: batch.month,
                gross_fen: 0,
                tax_fen: 0,
                net_fen: 0,
                withholding: item.withholding,
                batch_ids: vec![],
                lines: vec![],
            });
            s.gross_fen += item.gross_fen;
            s.tax_fen += item.tax_fen;
            s.net_fen += item.net_fen;
            // Batches come in the order approved: the last one holds the month's computation.
            s.withholding = item.withholding;
            s.batch_ids.push(batch.id.to_string());
        }
    }
    out
}

/// One statement with its lines.
pub async fn get(db: &Db, expert_id: &str, bureau: Bureau, month: YearMonth) -> Result<Statement, Status> {
    let batches = sql::settled_in_month(db.pool(), bureau, month).await?;
    let mut statement = aggregate(&batches, Some(expert_id)).into_values().next().ok_or_else(|| {
        Error::StatementNotFound(format!("for {expert_id} from {} in {}", bureau.division_code(), month.key()))
    })?;
    for batch_id in &statement.batch_ids {
        let filter = LineFilter {
            expert_id: Some(expert_id.to_owned()),
            batch_id: Some(batch_id.clone()),
            ..LineFilter::default()
        };
        statement.lines.extend(lines_sql::list_lines(db.pool(), &filter, None, 10_000).await?);
    }
    Ok(statement)
}

/// A page of statements without their lines, by month, expert and bureau.
pub async fn list(db: &Db, filter: &StatementFilter, page: &Page) -> Result<(Vec<Statement>, Option<String>), Status> {
    let batches = sql::settled_batches(db.pool(), filter.bureau, filter.month).await?;
    let after = page.after.clone().unwrap_or_default();
    let all: Vec<Statement> = aggregate(&batches, filter.expert_id.as_deref())
        .into_values()
        .filter(|s| after.is_empty() || s.key() > after)
        .take(page.size as usize + 1)
        .collect();
    Ok(page.finish(all, Statement::key))
}
