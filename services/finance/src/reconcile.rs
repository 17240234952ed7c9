//! 对账 — reconciliation of a paying bureau's payment month (issue 8 item 5): do fee lines,
//! batches, payments, statements and the exports written agree? Each check compares two figures
//! computed from different records; a check that does not hold names where the records differ.
//! Nothing is changed. docs/fees-and-tax.md section 9 lists the checks.

use std::collections::{BTreeMap, BTreeSet};

use supervision_kit::{Bureau, Caller, Db};
use tonic::Status;

use crate::{
    domain::{Batch, BatchStatus, ExportKind, FeeBasis, YearMonth, money::yuan, withhold},
    exports::month_incomes,
    store::{self, batches as batch_sql, fee_lines as lines_sql},
};

/// One comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub expected_fen: i64,
    pub actual_fen: i64,
    /// Where they differ, when they do.
    pub problems: Vec<String>,
}

impl Check {
    fn new(name: impl Into<String>, expected_fen: i64, actual_fen: i64, mut problems: Vec<String>) -> Self {
        if expected_fen != actual_fen && problems.is_empty() {
            problems.push(format!("{} expected, {} found", yuan(expected_fen), yuan(actual_fen)));
        }
        Self { name: name.into(), expected_fen, actual_fen, problems }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn detail(&self) -> String {
        self.problems.join("; ")
    }
}

/// The whole reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub checks: Vec<Check>,
}

impl Reconciliation {
    pub fn balanced(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    /// The checks that do not hold.
    pub fn discrepancies(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok())
    }
}

fn live(status: BatchStatus) -> bool {
    !matches!(status, BatchStatus::Rejected | BatchStatus::Cancelled)
}

/// Reconciles `bureau`'s payment month `month`.
pub async fn reconcile(db: &Db, caller: &Caller, bureau: Bureau, month: YearMonth) -> Result<Reconciliation, Status> {
    caller.require_bureau(bureau)?;
    let mut conn = db.pool().acquire().await.map_err(crate::error::Error::from)?;
    let mut checks = Vec::new();
    let key = month.key();

    // 1. Reversals net: with work dates in the month, every line (charges and reversals) sums to
    //    the live charges, and each reversal is the exact negative of one line, reversed once.
    let (all_fen, live_fen) = lines_sql::month_sums(&mut *conn, bureau, &key).await?;
    let broken = lines_sql::broken_reversals(&mut conn, bureau, &key).await?;
    checks.push(Check::new(
        format!("lines worked in {key}: all lines = live charges (reversals net)"),
        live_fen,
        all_fen,
        broken.into_iter().map(|(id, problem)| format!("{id} {problem}")).collect(),
    ));

    // 2. No line in two batches: across the bureau's live batches a line is listed once, and the
    //    batch a line names lists it.
    let batches = batch_sql::batches_of_bureau(&mut *conn, bureau).await?;
    let mut holder: BTreeMap<&str, &Batch> = BTreeMap::new();
    let mut problems = Vec::new();
    for batch in batches.iter().filter(|b| live(b.status)) {
        for id in batch.items.iter().flat_map(|i| &i.fee_line_ids) {
            if let Some(other) = holder.insert(id.as_str(), batch) {
                problems.push(format!("{id} is in {} and {}", other.id, batch.id));
            }
        }
    }
    for batch in batches.iter().filter(|b| !live(b.status)) {
        for line in lines_sql::lines_of_batch(&mut *conn, batch.id.as_str()).await? {
            problems.push(format!("{} is still held by {} batch {}", line.id, batch.status.code(), batch.id));
        }
    }
    checks.push(Check::new(
        "no line is in two batches",
        0,
        i64::try_from(problems.len()).unwrap_or(i64::MAX),
        problems,
    ));

    // 3. Each batch of the month: the lines that name it are the lines it lists, with the amounts
    //    it was settled on; a paid batch's lines are paid, an unpaid one's are not; and the
    //    batch's net is its gross less its tax.
    for batch in batches.iter().filter(|b| b.month == month && live(b.status)) {
        let lines = lines_sql::lines_of_batch(&mut *conn, batch.id.as_str()).await?;
        let listed: BTreeSet<&str> =
            batch.items.iter().flat_map(|i| i.fee_line_ids.iter().map(String::as_str)).collect();
        let stored: BTreeSet<&str> = lines.iter().map(|l| l.id.as_str()).collect();
        let mut problems: Vec<String> = listed
            .difference(&stored)
            .map(|id| format!("{id} is listed but does not name the batch"))
            .chain(stored.difference(&listed).map(|id| format!("{id} names the batch but is not listed")))
            .collect();
        let paid = batch.status == BatchStatus::Paid;
        for line in lines.iter().filter(|l| l.paid != paid) {
            problems.push(format!(
                "{} is {} in a {} batch",
                line.id,
                if line.paid { "paid" } else { "unpaid" },
                batch.status.code()
            ));
        }
        for line in
            lines.iter().filter(|l| l.payer.paying_bureau != batch.bureau || l.payer.fund_source != batch.fund_source)
        {
            problems.push(format!("{} is of another bureau or fund", line.id));
        }
        for item in &batch.items {
            if item.net_fen != item.gross_fen - item.tax_fen {
                problems.push(format!("{}: net is not gross less tax", item.expert_id));
            }
        }
        let expected: i64 = batch.items.iter().map(|i| i.pre_tax_fen + i.after_tax_net_fen).sum();
        let actual: i64 = lines.iter().map(|l| l.amount_fen).sum();
        checks.push(Check::new(
            format!("batch {} ({}): its lines = its items", batch.id, batch.status.code()),
            expected,
            actual,
            problems,
        ));
    }

    // 4. Statements and withholding: the month's statements sum the settled batches' lines (PRE_TAX
    //    at their amount, AFTER_TAX grossed up), and each expert's tax withheld in the month is the
    //    tax due on the month's income, as the latest computation says.
    let mut settled: Vec<Batch> =
        batches.iter().filter(|b| b.month == month && b.status.is_settled()).cloned().collect();
    // In the order approved, as the withholding was computed.
    settled.sort_by(|a, b| (a.approved_at, &a.id).cmp(&(b.approved_at, &b.id)));
    let incomes = month_incomes(&settled);
    let mut lines_fen = 0;
    for batch in &settled {
        for line in lines_sql::lines_of_batch(&mut *conn, batch.id.as_str()).await? {
            if line.basis == FeeBasis::PreTax {
                lines_fen += line.amount_fen;
            }
        }
        lines_fen += batch.items.iter().map(|i| i.gross_fen - i.pre_tax_fen).sum::<i64>();
    }
    let statements_fen: i64 = incomes.iter().map(|i| i.gross_fen).sum();
    checks.push(Check::new(format!("statements of {key} = settled lines"), lines_fen, statements_fen, vec![]));
    let mut problems = Vec::new();
    let mut due_fen = 0;
    for income in &incomes {
        let due = withhold(income.gross_fen, 0).tax.tax_due_fen;
        due_fen += due;
        // The tax is computed on the month's income, never below zero (`tax_due`): a month whose
        // corrections exceed its fees has income 0 for the withholding.
        if income.withholding.income_fen != income.gross_fen.max(0) {
            problems.push(format!(
                "{}: the latest withholding was computed on {}, the month's income is {}",
                income.expert_id,
                yuan(income.withholding.income_fen),
                yuan(income.gross_fen)
            ));
        }
        if income.withheld_fen != due {
            problems.push(format!(
                "{}: {} withheld, {} due on {}",
                income.expert_id,
                yuan(income.withheld_fen),
                yuan(due),
                yuan(income.gross_fen)
            ));
        }
    }
    let withheld_fen: i64 = settled.iter().map(Batch::total_tax_fen).sum();
    checks.push(Check::new(
        format!("tax withheld in {key} = tax due on the month's income"),
        due_fen,
        withheld_fen,
        problems,
    ));

    // 5. Exports: each bank file of the month's batches totals its batch's net; the latest
    //    withholding return of the month totals the month's income.
    for export in store::exports_of_bureau(&mut *conn, ExportKind::BankPaymentFile, bureau).await? {
        let Some(batch) = batches.iter().find(|b| b.id.as_str() == export.payment_batch_id && b.month == month) else {
            continue;
        };
        checks.push(Check::new(
            format!("bank file {} = batch {} net", export.id, batch.id),
            batch.total_net_fen(),
            export.total_fen,
            vec![],
        ));
    }
    let returns = store::exports_of_bureau(&mut *conn, ExportKind::WithholdingReturn, bureau).await?;
    if let Some(latest) = returns.iter().rev().find(|e| e.month == key) {
        let mut problems = Vec::new();
        if latest.total_fen != statements_fen {
            problems.push(format!(
                "written at {} with {} income; the month now holds {}: write the return again",
                latest.created_at.to_rfc3339(),
                yuan(latest.total_fen),
                yuan(statements_fen)
            ));
        }
        checks.push(Check::new(
            format!("withholding return {} = the month's income", latest.id),
            statements_fen,
            latest.total_fen,
            problems,
        ));
    }
    Ok(Reconciliation { checks })
}
