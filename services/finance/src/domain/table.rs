//! The rows of an export, written as CSV (UTF-8 or GB18030) or as an XLSX workbook. One table
//! renders to every format, so the figures in the two formats are the same figures.
//!
//! Amounts are integer fen. In CSV they are yuan text with two decimals (`1234.56`); in XLSX they
//! are numbers with the number format `0.00`, so a spreadsheet adds them up (fen / 100 is exact
//! to the fen in a double for any amount below 2^53 fen).

use chrono::NaiveDate;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, XlsxError};

use super::{FileEncoding, money::yuan};

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A whole number (a count, class hours, a rate in percent).
    Int(i64),
    /// An amount in fen.
    Money(i64),
    Empty,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into())
    }

    /// The cell as CSV text. Text that a spreadsheet would read as a formula (starting with `=`,
    /// `+`, `-`, `@`, or a tab or carriage return before one) gets a leading `'`, so a name or
    /// note from the registry never runs as a formula when the file is opened in Excel. Amounts
    /// and counts are numbers, never prefixed.
    fn as_text(&self) -> String {
        match self {
            Self::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
            Self::Text(s) => s.clone(),
            Self::Int(n) => n.to_string(),
            Self::Money(fen) => yuan(*fen),
            Self::Empty => String::new(),
        }
    }
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv(FileEncoding),
    Xlsx,
}

impl ExportFormat {
    /// The contract's format name.
    pub fn format_code(self) -> &'static str {
        match self {
            Self::Csv(e) => e.format_code(),
            Self::Xlsx => "FILE_FORMAT_XLSX",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv(e) => e.media_type(),
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Xlsx => "xlsx",
        }
    }
}

/// A header, rows and a totals row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The sheet's name in a workbook (at most 31 characters).
    pub title: String,
    /// A day the workbook's properties name as its creation date, so the same data always gives
    /// the same bytes (the file's SHA-256 is kept, and a retry must give the same file).
    pub dated: NaiveDate,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    pub totals: Vec<Cell>,
}

impl Table {
    pub fn render(&self, format: ExportFormat) -> Result<Vec<u8>, XlsxError> {
        match format {
            ExportFormat::Csv(encoding) => Ok(self.to_csv(encoding)),
            ExportFormat::Xlsx => self.to_xlsx(),
        }
    }

    /// CSV with CRLF line ends; fields quoted where they need it.
    pub fn to_csv(&self, encoding: FileEncoding) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        let mut write = |record: Vec<String>| {
            // Writing into a Vec cannot fail.
            let _ = writer.write_record(&record);
        };
        write(self.header.iter().map(|h| (*h).to_owned()).collect());
        for row in &self.rows {
            write(row.iter().map(Cell::as_text).collect());
        }
        write(self.totals.iter().map(Cell::as_text).collect());
        let bytes = writer.into_inner().unwrap_or_default();
        encoding.encode(&String::from_utf8_lossy(&bytes))
    }

    /// One worksheet: a bold header, the rows, a bold totals row.
    pub fn to_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut workbook = Workbook::new();
        let created = ExcelDateTime::from_ymd(
            u16::try_from(chrono::Datelike::year(&self.dated)).unwrap_or(2000),
            u8::try_from(chrono::Datelike::month(&self.dated)).unwrap_or(1),
            u8::try_from(chrono::Datelike::day(&self.dated)).unwrap_or(1),
        )?;
        workbook.set_properties(&DocProperties::new().set_title(&self.title).set_creation_datetime(&created));
        let bold = Format::new().set_bold();
        let amount = Format::new().set_num_format("0.00");
        let bold_amount = Format::new().set_bold().set_num_format("0.00");
        let sheet = workbook.add_worksheet();
        sheet.set_name(self.title.chars().take(31).collect::<String>())?;
        for (c, h) in self.header.iter().enumerate() {
            sheet.write_string_with_format(0, col(c), *h, &bold)?;
        }
        let mut write_row = |r: u32, cells: &[Cell], total: bool| -> Result<(), XlsxError> {
            for (c, cell) in cells.iter().enumerate() {
                let c = col(c);
                match cell {
                    Cell::Text(s) if total => sheet.write_string_with_format(r, c, s, &bold).map(|_| ())?,
                    Cell::Text(s) => sheet.write_string(r, c, s).map(|_| ())?,
                    #[allow(clippy::cast_precision_loss)]
                    Cell::Int(n) => sheet.write_number(r, c, *n as f64).map(|_| ())?,
                    #[allow(clippy::cast_precision_loss)]
                    Cell::Money(fen) => sheet
                        .write_number_with_format(r, c, *fen as f64 / 100.0, if total { &bold_amount } else { &amount })
                        .map(|_| ())?,
                    Cell::Empty => {}
                }
            }
            Ok(())
        };
        let mut r = 1u32;
        for row in &self.rows {
            write_row(r, row, false)?;
            r += 1;
        }
        write_row(r, &self.totals, true)?;
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofit();
        workbook.save_to_buffer()
    }
}

fn col(c: usize) -> u16 {
    u16::try_from(c).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use calamine::{Data, Reader, Xlsx};

    use super::*;

    fn table() -> Table {
        Table {
            title: "银行代发".into(),
            dated: NaiveDate::from_ymd_opt(2026, 4, 30).unwrap(),
            header: vec!["姓名", "账号", "金额(元)"],
            rows: vec![
                vec![Cell::text("李明"), Cell::text("6222021234567890123"), Cell::Money(112_000)],
                vec![Cell::text("王, 芳"), Cell::text("6222"), Cell::Money(5)],
            ],
            totals: vec![Cell::text("合计"), Cell::Empty, Cell::Money(112_005)],
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_keeps_account_numbers_as_text() {
        let csv = String::from_utf8(table().to_csv(FileEncoding::Utf8)).unwrap();
        assert_eq!(
            csv,
            "姓名,账号,金额(元)\r\n李明,6222021234567890123,1120.00\r\n\"王, 芳\",6222,0.05\r\n合计,,1120.05\r\n"
        );
        assert!(!csv.starts_with('\u{feff}'), "FILE_FORMAT_CSV_UTF8 writes no byte-order mark");
    }

    #[test]
    fn csv_text_that_looks_like_a_formula_is_quoted_and_numbers_are_not() {
        let t = Table {
            title: "t".into(),
            dated: NaiveDate::from_ymd_opt(2026, 4, 30).unwrap(),
            header: vec!["a", "b", "c", "d", "e", "f", "g"],
            rows: vec![vec![
                Cell::text("=HYPERLINK(\"http://x\")"),
                Cell::text("+1"),
                Cell::text("-2+3"),
                Cell::text("@SUM(A1)"),
                Cell::text("李=明"),
                Cell::Money(-500),
                Cell::Int(-3),
            ]],
            totals: vec![
                Cell::text("\t=1"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
            ],
        };
        let csv = String::from_utf8(t.to_csv(FileEncoding::Utf8)).unwrap();
        assert_eq!(
            csv,
            "a,b,c,d,e,f,g\r\n\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'-2+3,'@SUM(A1),李=明,-5.00,-3\r\n'\t=1,,,,,,\r\n"
        );
    }

    #[test]
    fn xlsx_holds_the_same_figures_and_the_same_data_gives_the_same_bytes() {
        let bytes = table().to_xlsx().unwrap();
        assert_eq!(bytes, table().to_xlsx().unwrap(), "deterministic");
        let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let range = book.worksheet_range("银行代发").unwrap();
        let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1][1], Data::String("6222021234567890123".into()), "account numbers stay text");
        assert_eq!(rows[1][2], Data::Float(1120.0));
        assert_eq!(rows[3][0], Data::String("合计".into()));
        assert_eq!(rows[3][2], Data::Float(1120.05));
    }
}
