//! 台账 — the ledger of labour fees by month, paying bureau and fund (article 10 names two
//! funds; each bureau pays for its own tasks), for the bureaus' accounts.

use std::fmt;

use supervision_kit::Bureau;

use super::{FileEncoding, money::yuan};

/// A calendar month in Asia/Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    pub year: i32,
    pub month: u32,
}

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((2000..=2199).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// `YYYY-MM`, which is also the prefix of every `YYYY-MM-DD` date in the month.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub fn parse_key(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        Self::new(y.parse().ok()?, m.parse().ok()?)
    }

    /// Months from `self` to `other` inclusive (0 when `other` is earlier).
    pub fn months_until(self, other: YearMonth) -> i32 {
        (other.year - self.year) * 12 + i32::try_from(other.month).unwrap_or(0) - i32::try_from(self.month).unwrap_or(0)
            + 1
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// An inclusive range of months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    pub from: YearMonth,
    pub to: YearMonth,
}

impl MonthRange {
    /// The longest range one ledger covers: ten years, the accounting records' retention.
    pub const MAX_MONTHS: i32 = 120;
}

/// What a ledger covers; `None` means every bureau or both funds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    pub bureau: Option<Bureau>,
    /// The contract name of the fund (`FUND_SOURCE_...`).
    pub fund: Option<String>,
    pub months: MonthRange,
}

/// One month, bureau and fund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub month: YearMonth,
    pub bureau: Bureau,
    pub fund: String,
    /// Charge and reversal lines counted.
    pub lines: i64,
    pub billable_class_hours: i64,
    pub amount_fen: i64,
}

/// The rows of a ledger, in month, bureau and fund order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub query: LedgerQuery,
    pub rows: Vec<LedgerRow>,
}

impl Ledger {
    pub fn total_fen(&self) -> i64 {
        self.rows.iter().map(|r| r.amount_fen).sum()
    }

    /// A file name that says what the ledger covers.
    pub fn file_name(&self, extension: &str) -> String {
        let who = self.query.bureau.map_or("全市".to_owned(), |b| b.division_code().to_owned());
        format!("劳务费台账-{who}-{}至{}.{extension}", self.query.months.from, self.query.months.to)
    }

    /// The ledger as CSV: a header, one row per month, bureau and fund, and a total row.
    /// Amounts are yuan with two decimals; no personal data appears.
    pub fn to_csv(&self, encoding: FileEncoding) -> Vec<u8> {
        let mut text = String::from("月份,付款单位代码,付款单位,资金来源,费用行数,计费学时,金额(元)\r\n");
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\r\n",
                r.month,
                r.bureau.division_code(),
                r.bureau.chinese_name(),
                fund_name(&r.fund),
                r.lines,
                r.billable_class_hours,
                yuan(r.amount_fen)
            ));
        }
        let lines: i64 = self.rows.iter().map(|r| r.lines).sum();
        let hours: i64 = self.rows.iter().map(|r| r.billable_class_hours).sum();
        text.push_str(&format!("合计,,,,{lines},{hours},{}\r\n", yuan(self.total_fen())));
        encoding.encode(&text)
    }
}

/// The fund's name as the bureaus' accounts write it.
pub fn fund_name(code: &str) -> &str {
    match code {
        "FUND_SOURCE_PROVINCIAL_SKILL_TRAINING" => "省级促进就业创业发展专项资金（职业技能提升培训）",
        "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT" => "市县两级就业创业专项资金",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        let may = YearMonth::new(2026, 5).unwrap();
        Ledger {
            query: LedgerQuery { bureau: None, fund: None, months: MonthRange { from: may, to: may } },
            rows: vec![
                LedgerRow {
                    month: may,
                    bureau: Bureau::City,
                    fund: "FUND_SOURCE_CITY_COUNTY_EMPLOYMENT".into(),
                    lines: 3,
                    billable_class_hours: 10,
                    amount_fen: 100_000,
                },
                LedgerRow {
                    month: may,
                    bureau: Bureau::Xinhui,
                    fund: "FUND_SOURCE_PROVINCIAL_SKILL_TRAINING".into(),
                    lines: 2,
                    billable_class_hours: 4,
                    amount_fen: 40_000,
                },
            ],
        }
    }

    #[test]
    fn months_parse_compare_and_count() {
        let jan = YearMonth::parse_key("2026-01").unwrap();
        let dec = YearMonth::new(2025, 12).unwrap();
        assert!(dec < jan);
        assert_eq!(dec.months_until(jan), 2);
        assert_eq!(jan.months_until(dec), 0);
        assert_eq!(YearMonth::new(2026, 13), None);
    }

    #[test]
    fn the_csv_has_a_row_per_group_and_a_total() {
        let csv = String::from_utf8(ledger().to_csv(FileEncoding::Utf8)).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1], "2026-05,440700,江门市,市县两级就业创业专项资金,3,10,1000.00");
        assert_eq!(rows[3], "合计,,,,5,14,1400.00");
    }

    #[test]
    fn gb18030_is_what_chinese_spreadsheets_read() {
        let bytes = ledger().to_csv(FileEncoding::Gb18030);
        let (decoded, _, bad) = encoding_rs::GB18030.decode(&bytes);
        assert!(!bad);
        assert!(decoded.contains("新会区"));
        assert!(String::from_utf8(bytes).is_err(), "not UTF-8");
    }
}
