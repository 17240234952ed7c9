//! The files finance writes for the bureaus' finance staff (issue 8 item 4), as tables: the bank
//! payment file of a batch (银行代发文件), the month's withholding-return data (扣缴申报数据, the
//! paying bureau being the withholding agent, D9) and an expert's yearly statement. Payee identity
//! and bank details come from the registry when the file is written and are never stored here.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use supervision_kit::Bureau;

use super::{
    Batch, WithholdingRecord, YearMonth,
    batch::Refusal,
    ledger::fund_name,
    table::{Cell, Table},
};

/// What the registry's GetPayee gave for one expert, in full, for the file being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    pub expert_id: String,
    pub name: String,
    /// The document type as the tax return names it (居民身份证, ...).
    pub identity_type: String,
    pub identity_number: String,
    pub holder_name: String,
    pub bank_name: String,
    pub branch_name: String,
    pub account_number: String,
}

fn last_day(month: YearMonth) -> NaiveDate {
    let (year, next) = if month.month == 12 { (month.year + 1, 1) } else { (month.year, month.month + 1) };
    NaiveDate::from_ymd_opt(year, next, 1).and_then(|d| d.pred_opt()).unwrap_or_default()
}

/// The bank payment file of an approved or paid batch: one row per expert paid (net above zero),
/// the net to transfer, and a totals row equal to the batch's net total. An expert whose payment
/// nets to nothing gets no row (nothing to transfer); one whose payment is negative (a correction
/// larger than the month's new lines) is refused, because a bank cannot transfer it.
pub fn bank_file(batch: &Batch, payees: &BTreeMap<String, Payee>) -> Result<Table, Refusal> {
    let mut rows = Vec::new();
    for item in &batch.items {
        if item.net_fen < 0 {
            return Err(Refusal::precondition(
                "NEGATIVE_PAYMENT",
                format!(
                    "expert {}'s payment in batch {} is negative ({} fen): a bank file cannot transfer it",
                    item.expert_id, batch.id, item.net_fen
                ),
            ));
        }
        if item.net_fen == 0 {
            continue;
        }
        let payee = payees.get(&item.expert_id).ok_or_else(|| {
            Refusal::precondition("PAYEE_MISSING", format!("no payee details for {}", item.expert_id))
        })?;
        rows.push(vec![
            Cell::Int(i64::try_from(rows.len() + 1).unwrap_or(i64::MAX)),
            Cell::text(&item.expert_id),
            Cell::text(&payee.name),
            Cell::text(&payee.holder_name),
            Cell::text(&payee.bank_name),
            Cell::text(&payee.branch_name),
            Cell::text(&payee.account_number),
            Cell::Money(item.net_fen),
            Cell::text(format!("劳务费 {} {}", batch.month, batch.id)),
        ]);
    }
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    Ok(Table {
        title: "银行代发".into(),
        dated: last_day(batch.month),
        header: vec![
            "序号",
            "专家编号",
            "收款人姓名",
            "开户名",
            "开户银行",
            "开户网点",
            "收款账号",
            "金额(元)",
            "摘要",
        ],
        rows,
        totals: vec![
            Cell::text("合计"),
            Cell::Int(count),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Money(batch.total_net_fen()),
            Cell::Empty,
        ],
    })
}

/// One expert's income from the paying bureau in the payment month: the sum of the month's
/// approved and paid batches, and the month's latest withholding computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthIncome {
    pub expert_id: String,
    pub gross_fen: i64,
    pub withheld_fen: i64,
    pub withholding: WithholdingRecord,
}

/// The withholding-return data of a paying bureau's payment month (全员全额扣缴申报, due by the
/// 15th of the next month): per payee the identity, the month's income (one "次", D9), the
/// deduction, the taxable amount, rate, quick deduction, the tax due and the tax withheld.
pub fn withholding_return(
    bureau: Bureau,
    month: YearMonth,
    incomes: &[MonthIncome],
    payees: &BTreeMap<String, Payee>,
) -> Result<Table, Refusal> {
    let mut rows = Vec::new();
    let (mut gross, mut deduction, mut taxable, mut due, mut withheld) = (0, 0, 0, 0, 0);
    for income in incomes {
        let payee = payees.get(&income.expert_id).ok_or_else(|| {
            Refusal::precondition("PAYEE_MISSING", format!("no payee details for {}", income.expert_id))
        })?;
        let w = &income.withholding;
        rows.push(vec![
            Cell::Int(i64::try_from(rows.len() + 1).unwrap_or(i64::MAX)),
            Cell::text(&payee.name),
            Cell::text(&payee.identity_type),
            Cell::text(&payee.identity_number),
            Cell::text("劳务报酬所得"),
            Cell::Money(income.gross_fen),
            Cell::Money(w.deduction_fen),
            Cell::Money(w.taxable_fen),
            Cell::Int(w.rate_percent),
            Cell::Money(w.quick_deduction_fen),
            Cell::Money(w.tax_due_fen),
            Cell::Money(income.withheld_fen),
            Cell::text(&income.expert_id),
        ]);
        gross += income.gross_fen;
        deduction += w.deduction_fen;
        taxable += w.taxable_fen;
        due += w.tax_due_fen;
        withheld += income.withheld_fen;
    }
    Ok(Table {
        title: format!("扣缴申报-{}-{month}", bureau.division_code()),
        dated: last_day(month),
        header: vec![
            "序号",
            "姓名",
            "证件类型",
            "证件号码",
            "所得项目",
            "收入额(元)",
            "减除费用(元)",
            "应纳税所得额(元)",
            "预扣率(%)",
            "速算扣除数(元)",
            "应纳税额(元)",
            "已扣缴税额(元)",
            "专家编号",
        ],
        rows,
        totals: vec![
            Cell::text("合计"),
            Cell::Int(i64::try_from(incomes.len()).unwrap_or(i64::MAX)),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Money(gross),
            Cell::Money(deduction),
            Cell::Money(taxable),
            Cell::Empty,
            Cell::Empty,
            Cell::Money(due),
            Cell::Money(withheld),
            Cell::Empty,
        ],
    })
}

/// One row of a yearly statement: what one paying bureau paid the expert from one fund in one
/// payment month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearRow {
    pub month: YearMonth,
    pub bureau: Bureau,
    pub fund_source: String,
    pub task_numbers: Vec<String>,
    pub billable_class_hours: i64,
    pub gross_fen: i64,
    pub tax_fen: i64,
    pub net_fen: i64,
    pub batch_ids: Vec<String>,
}

/// An expert's yearly statement (DOMAIN.md 10.11): per payment month, paying bureau and fund,
/// the tasks, class hours, gross, tax withheld and net, and the year's totals.
pub fn yearly_statement(name: &str, year: i32, rows: &[YearRow]) -> Table {
    let mut out = Vec::new();
    for r in rows {
        out.push(vec![
            Cell::text(name),
            Cell::text(r.month.key()),
            Cell::text(r.bureau.division_code()),
            Cell::text(r.bureau.chinese_name()),
            Cell::text(fund_name(&r.fund_source)),
            Cell::text(r.task_numbers.join(" ")),
            Cell::Int(r.billable_class_hours),
            Cell::Money(r.gross_fen),
            Cell::Money(r.tax_fen),
            Cell::Money(r.net_fen),
            Cell::text(r.batch_ids.join(" ")),
        ]);
    }
    let sum = |f: fn(&YearRow) -> i64| rows.iter().map(f).sum::<i64>();
    Table {
        title: format!("{year}年度劳务费"),
        dated: NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or_default(),
        header: vec![
            "姓名",
            "月份",
            "付款单位代码",
            "付款单位",
            "资金来源",
            "任务编号",
            "计费学时",
            "应发金额(元)",
            "代扣个人所得税(元)",
            "实发金额(元)",
            "发放批次",
        ],
        rows: out,
        totals: vec![
            Cell::text("合计"),
            Cell::text(year.to_string()),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Int(sum(|r| r.billable_class_hours)),
            Cell::Money(sum(|r| r.gross_fen)),
            Cell::Money(sum(|r| r.tax_fen)),
            Cell::Money(sum(|r| r.net_fen)),
            Cell::Empty,
        ],
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use supervision_kit::auth::Actor;

    use super::*;
    use crate::domain::{BatchId, BatchItem, BatchStatus, FileEncoding, MonthSoFar};

    fn payee(expert: &str, name: &str) -> Payee {
        Payee {
            expert_id: expert.into(),
            name: name.into(),
            identity_type: "居民身份证".into(),
            identity_number: "440703198506150029".into(),
            holder_name: name.into(),
            bank_name: "中国工商银行".into(),
            branch_name: "江门分行营业部".into(),
            account_number: "6222021234567890123".into(),
        }
    }

    fn item(expert: &str, pre_tax_fen: i64) -> BatchItem {
        let mut item = BatchItem {
            expert_id: expert.into(),
            fee_line_ids: vec![],
            pre_tax_fen,
            after_tax_net_fen: 0,
            gross_fen: 0,
            tax_fen: 0,
            net_fen: 0,
            withholding: WithholdingRecord {
                income_fen: 0,
                deduction_fen: 0,
                taxable_fen: 0,
                rate_percent: 0,
                quick_deduction_fen: 0,
                tax_due_fen: 0,
                already_withheld_fen: 0,
                withheld_now_fen: 0,
                flat_deduction: true,
            },
        };
        item.settle(MonthSoFar::default());
        item
    }

    fn batch(items: Vec<BatchItem>) -> Batch {
        let preparer = Actor { subject: "p".into(), role: "FINANCE".into(), bureau: Some("440705".into()) };
        Batch {
            id: BatchId::generate(),
            bureau: Bureau::Xinhui,
            month: YearMonth { year: 2026, month: 4 },
            fund_source: "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT".into(),
            status: BatchStatus::Approved,
            items,
            requires_second_approval: false,
            approvals: vec![],
            prepared_by: preparer,
            created_at: Utc::now(),
            submitted_at: None,
            approved_at: None,
            close_reason: String::new(),
            closed_by: None,
            bank_reference: String::new(),
            paid_date: None,
            paid_by: None,
        }
    }

    #[test]
    fn the_bank_file_pays_each_net_and_totals_the_batch_net() {
        // A7: 1,200 yuan nets 1,120; 700 yuan nets 700; a zero payment gets no row.
        let b = batch(vec![item("exp_a", 120_000), item("exp_b", 70_000), item("exp_c", 0)]);
        let payees: BTreeMap<_, _> =
            [payee("exp_a", "李明"), payee("exp_b", "王芳")].into_iter().map(|p| (p.expert_id.clone(), p)).collect();
        let table = bank_file(&b, &payees).unwrap();
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[0][7], Cell::Money(112_000));
        assert_eq!(table.totals[7], Cell::Money(b.total_net_fen()));
        assert_eq!(b.total_net_fen(), 182_000);
        let csv = String::from_utf8(table.to_csv(FileEncoding::Utf8)).unwrap();
        assert!(csv.contains("1,exp_a,李明,李明,中国工商银行,江门分行营业部,6222021234567890123,1120.00,"), "{csv}");
        assert!(csv.ends_with("合计,2,,,,,,1820.00,\r\n"), "{csv}");
    }

    #[test]
    fn a_negative_payment_or_a_missing_payee_refuses_the_bank_file() {
        let b = batch(vec![item("exp_a", -40_000)]);
        assert_eq!(bank_file(&b, &BTreeMap::new()).unwrap_err().reason, "NEGATIVE_PAYMENT");
        let b = batch(vec![item("exp_a", 40_000)]);
        assert_eq!(bank_file(&b, &BTreeMap::new()).unwrap_err().reason, "PAYEE_MISSING");
    }

    #[test]
    fn the_withholding_return_lists_income_deduction_taxable_and_tax() {
        // A8: 4,800 yuan -> 3,840 taxable -> 768 withheld.
        let a8 = item("exp_a", 480_000);
        let income = MonthIncome {
            expert_id: "exp_a".into(),
            gross_fen: a8.gross_fen,
            withheld_fen: a8.tax_fen,
            withholding: a8.withholding,
        };
        let payees: BTreeMap<_, _> = [("exp_a".to_owned(), payee("exp_a", "李明"))].into();
        let table = withholding_return(Bureau::Xinhui, YearMonth { year: 2026, month: 4 }, &[income], &payees).unwrap();
        let csv = String::from_utf8(table.to_csv(FileEncoding::Utf8)).unwrap();
        assert!(
            csv.contains(
                "1,李明,居民身份证,440703198506150029,劳务报酬所得,4800.00,960.00,3840.00,20,0.00,768.00,768.00,exp_a"
            ),
            "{csv}"
        );
        assert!(csv.ends_with("合计,1,,,,4800.00,960.00,3840.00,,,768.00,768.00,\r\n"), "{csv}");
    }
}
