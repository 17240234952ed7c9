//! Reading and writing the tables of ImportExperts / ImportInstitutions and their exports: CSV in
//! UTF-8 or GB18030, and XLSX. Every cell is text; XLSX date cells become `YYYY-MM-DD` and whole
//! numbers lose no digits they had (ID numbers belong in text cells all the same: a spreadsheet
//! keeps only 15 digits of a number).

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use supervision_kit::error::invalid_field;
use supervision_proto::common::FileFormat;
use tonic::Status;

/// An import may be up to 32 MiB (ImportExpertsRequest).
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;
/// The most an XLSX file's parts may hold uncompressed, each and together: a larger workbook
/// (or a zip bomb, a few kilobytes that inflate to gigabytes) is refused before it is read.
pub const MAX_XLSX_UNCOMPRESSED_BYTES: u64 = 200 * 1024 * 1024;
/// The most rows (header included) an import file may hold.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// An export is sent in chunks of up to 1 MiB.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// A table read from a file: its header row and its data rows, each with its 1-based row number
/// in the file (the header is row 1). Rows whose cells are all blank are left out.
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    pub header: Vec<String>,
    pub rows: Vec<(i32, Vec<String>)>,
}

/// The format asked for, for reading or writing a table.
pub fn table_format(value: i32, field: &str) -> Result<FileFormat, Status> {
    match FileFormat::try_from(value) {
        Ok(f @ (FileFormat::CsvUtf8 | FileFormat::CsvGb18030 | FileFormat::Xlsx)) => Ok(f),
        _ => Err(invalid_field(field, "must be CSV_UTF8, CSV_GB18030 or XLSX")),
    }
}

/// Reads the table of an import file. A CSV file's encoding is detected whichever CSV format was
/// named: a UTF-8 byte-order mark, or bytes that are valid UTF-8, read as UTF-8, anything else as
/// GB18030 (what spreadsheet programs on Chinese Windows write).
pub fn read(format: FileFormat, content: &[u8]) -> Result<Sheet, Status> {
    if content.len() > MAX_IMPORT_BYTES {
        return Err(invalid_field("content", "is larger than 32 MiB; split the file"));
    }
    if content.is_empty() {
        return Err(invalid_field("content", "is empty"));
    }
    let rows = match format {
        FileFormat::Xlsx => {
            check_zip_sizes(content, MAX_XLSX_UNCOMPRESSED_BYTES)?;
            read_xlsx(content)?
        }
        _ => read_csv(&decode_text(content)?)?,
    };
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(invalid_field("content", format!("holds more than {MAX_IMPORT_ROWS} rows; split the file")));
    }
    let mut rows = rows.into_iter().enumerate().map(|(i, cells)| (i32::try_from(i + 1).unwrap_or(i32::MAX), cells));
    let Some((_, header)) = rows.next() else {
        return Err(invalid_field("content", "holds no header row"));
    };
    let header = header.into_iter().map(|h| h.trim().to_owned()).collect();
    let rows = rows.filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty())).collect();
    Ok(Sheet { header, rows })
}

/// CSV bytes as text: UTF-8 (with or without its byte-order mark), else GB18030.
pub fn decode_text(content: &[u8]) -> Result<String, Status> {
    if let Some(rest) = content.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec())
            .map_err(|_| invalid_field("content", "starts with a UTF-8 byte-order mark but is not UTF-8"));
    }
    if let Ok(text) = std::str::from_utf8(content) {
        return Ok(text.to_owned());
    }
    let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(content);
    if had_errors {
        return Err(invalid_field("content", "is neither UTF-8 nor GB18030 text"));
    }
    Ok(text.into_owned())
}

/// Refuses an XLSX (zip) file whose parts inflate to more than `limit` bytes, each or together.
/// Each part is inflated into nothing and counted, stopping past the limit, so a part whose
/// central directory understates its size is caught as well.
fn check_zip_sizes(content: &[u8], limit: u64) -> Result<(), Status> {
    let too_large = || invalid_field("content", format!("the workbook inflates to more than {} MiB", limit >> 20));
    let mut archive = zip::ZipArchive::new(Cursor::new(content))
        .map_err(|err| invalid_field("content", format!("is not a readable XLSX workbook: {err}")))?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let part = archive
            .by_index(i)
            .map_err(|err| invalid_field("content", format!("is not a readable XLSX workbook: {err}")))?;
        if part.size() > limit || total.saturating_add(part.size()) > limit {
            return Err(too_large());
        }
        let room = limit - total;
        let inflated = std::io::copy(&mut std::io::Read::take(part, room + 1), &mut std::io::sink())
            .map_err(|err| invalid_field("content", format!("is not a readable XLSX workbook: {err}")))?;
        if inflated > room {
            return Err(too_large());
        }
        total += inflated;
    }
    Ok(())
}

fn read_csv(text: &str) -> Result<Vec<Vec<String>>, Status> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record =
            record.map_err(|err| invalid_field("content", format!("row {} is not readable CSV: {err}", i + 1)))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

fn read_xlsx(content: &[u8]) -> Result<Vec<Vec<String>>, Status> {
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(content))
        .map_err(|err| invalid_field("content", format!("is not a readable XLSX workbook: {err}")))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| invalid_field("content", "the workbook has no worksheet"))?
        .map_err(|err| invalid_field("content", format!("the first worksheet is not readable: {err}")))?;
    // Rows above the used range are blank; keep the file's row numbers by padding them.
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); first_row as usize];
    for row in range.rows() {
        let mut cells = vec![String::new(); first_col as usize];
        cells.extend(row.iter().map(cell_text));
        rows.push(cells);
    }
    Ok(rows)
}

/// A cell as text: strings as they are, whole numbers without a decimal point, dates as
/// `YYYY-MM-DD`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        #[allow(clippy::cast_possible_truncation)]
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(dt) => {
            let (year, month, day, ..) = dt.to_ymd_hms_milli();
            NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))
                .map(|d| d.to_string())
                .unwrap_or_default()
        }
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// A file made from a header and rows, in `format`; every cell is written as text.
pub fn write(format: FileFormat, header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, Status> {
    match format {
        FileFormat::Xlsx => write_xlsx(header, rows),
        FileFormat::CsvGb18030 => {
            let text = String::from_utf8(write_csv(header, rows)?).map_err(|e| Status::internal(e.to_string()))?;
            let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
            if unmappable {
                return Err(Status::internal("a value cannot be written in GB18030"));
            }
            Ok(bytes.into_owned())
        }
        _ => write_csv(header, rows),
    }
}

fn write_csv(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, Status> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Status::internal(format!("writing CSV: {e}"));
    writer.write_record(header).map_err(failed)?;
    for row in rows {
        writer.write_record(row).map_err(failed)?;
    }
    writer.into_inner().map_err(|e| Status::internal(format!("writing CSV: {e}")))
}

fn write_xlsx(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, Status> {
    let failed = |e: rust_xlsxwriter::XlsxError| Status::internal(format!("writing XLSX: {e}"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, name) in header.iter().enumerate() {
        sheet.write_string(0, u16::try_from(col).unwrap_or(u16::MAX), *name).map_err(failed)?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = u32::try_from(i + 1).map_err(|_| Status::out_of_range("too many rows for one worksheet"))?;
        for (col, value) in row.iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string(r, u16::try_from(col).unwrap_or(u16::MAX), value).map_err(failed)?;
            }
        }
    }
    workbook.save_to_buffer().map_err(failed)
}

/// The file name's extension and media type of a format.
pub fn file_type(format: FileFormat) -> (&'static str, &'static str) {
    match format {
        FileFormat::Xlsx => ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        FileFormat::CsvGb18030 => ("csv", "text/csv; charset=GB18030"),
        _ => ("csv", "text/csv; charset=utf-8"),
    }
}

/// A file cut into chunks of up to 1 MiB, with the SHA-256 of the whole, for an export stream:
/// `(chunk, sha256 on the last chunk only)`.
pub fn chunks(file: &[u8]) -> Vec<(Vec<u8>, String)> {
    let digest = hex::encode(Sha256::digest(file));
    let mut parts: Vec<(Vec<u8>, String)> = file.chunks(CHUNK_BYTES).map(|c| (c.to_vec(), String::new())).collect();
    if parts.is_empty() {
        parts.push((Vec::new(), String::new()));
    }
    if let Some(last) = parts.last_mut() {
        last.1 = digest;
    }
    parts
}

/// Columns by header name, for reading cells of a row.
#[derive(Debug, Clone)]
pub struct Columns {
    index: std::collections::HashMap<String, usize>,
}

impl Columns {
    /// Maps the header; problems (an unknown or repeated column, a required one missing) as
    /// (column, message) for row 1.
    pub fn new(
        header: &[String],
        known: &[&str],
        ignored: &[&str],
        required: &[&str],
    ) -> (Self, Vec<(String, String)>) {
        let mut index = std::collections::HashMap::new();
        let mut problems = Vec::new();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            if name.is_empty() || ignored.contains(&name.as_str()) {
                continue;
            }
            if !known.contains(&name.as_str()) {
                problems.push((name, "is not a column of this import; see docs/import-export.md".to_owned()));
            } else if index.insert(name.clone(), i).is_some() {
                problems.push((name, "appears twice in the header".to_owned()));
            }
        }
        for name in required {
            if !index.contains_key(*name) {
                problems.push(((*name).to_owned(), "is a required column and is missing".to_owned()));
            }
        }
        (Self { index }, problems)
    }

    /// The trimmed cell of `column` in `row`; empty when the column is absent.
    pub fn cell<'a>(&self, row: &'a [String], column: &str) -> &'a str {
        self.index.get(column).and_then(|&i| row.get(i)).map_or("", |s| s.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_is_utf8_with_or_without_its_mark_else_gb18030() {
        assert_eq!(decode_text("name\n李明\n".as_bytes()).unwrap(), "name\n李明\n");
        assert_eq!(decode_text(b"\xEF\xBB\xBFname\n").unwrap(), "name\n");
        let (gb, _, _) = encoding_rs::GB18030.encode("name\n李明\n");
        assert!(std::str::from_utf8(&gb).is_err(), "GB18030 Chinese is not UTF-8");
        assert_eq!(decode_text(&gb).unwrap(), "name\n李明\n");
    }

    #[test]
    fn a_table_round_trips_through_every_format() {
        let header = ["name", "id_number"];
        let rows =
            vec![vec!["李明".to_owned(), "44070319850615002X".to_owned()], vec!["王芳".to_owned(), String::new()]];
        for format in [FileFormat::CsvUtf8, FileFormat::CsvGb18030, FileFormat::Xlsx] {
            let file = write(format, &header, &rows).unwrap();
            let sheet = read(format, &file).unwrap();
            assert_eq!(sheet.header, ["name", "id_number"], "{format:?}");
            assert_eq!(sheet.rows.len(), 2, "{format:?}");
            assert_eq!(sheet.rows[0].0, 2, "the first data row is row 2");
            assert_eq!(sheet.rows[0].1[..2], rows[0][..], "{format:?}");
            assert_eq!(sheet.rows[1].1[0], "王芳", "{format:?}");
        }
    }

    fn zip_of(parts: &[(&str, usize)]) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, size) in parts {
            writer.start_file(*name, options).unwrap();
            writer.write_all(&vec![b'a'; *size]).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_workbook_that_inflates_past_the_limit_is_refused() {
        let small = zip_of(&[("a.xml", 400), ("b.xml", 500)]);
        assert!(check_zip_sizes(&small, 1000).is_ok());
        // A part past the limit, and parts that together pass it, each compressing to little.
        for parts in [&[("a.xml", 1001)][..], &[("a.xml", 600), ("b.xml", 600)][..]] {
            let bomb = zip_of(parts);
            assert!(bomb.len() < 1000, "compresses well");
            let err = check_zip_sizes(&bomb, 1000).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{parts:?}");
        }
        // Through read: a real workbook passes; something that is no zip is INVALID_ARGUMENT.
        let workbook = write(FileFormat::Xlsx, &["a"], &[vec!["1".into()]]).unwrap();
        assert!(read(FileFormat::Xlsx, &workbook).is_ok());
        assert_eq!(read(FileFormat::Xlsx, b"not a zip").unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_import_of_too_many_rows_is_refused() {
        let text = "a\n".repeat(MAX_IMPORT_ROWS + 1);
        let err = read(FileFormat::CsvUtf8, text.as_bytes()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(read(FileFormat::CsvUtf8, "a\n".repeat(MAX_IMPORT_ROWS).as_bytes()).is_ok());
    }

    #[test]
    fn chunks_carry_the_digest_on_the_last() {
        let file = vec![7u8; CHUNK_BYTES + 10];
        let parts = chunks(&file);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].1.is_empty());
        assert_eq!(parts[1].1, hex::encode(Sha256::digest(&file)));
        assert_eq!(parts[0].0.len() + parts[1].0.len(), file.len());
    }

    #[test]
    fn the_header_names_unknown_repeated_and_missing_columns() {
        let header: Vec<String> = ["Name", "colour", "name", "id"].iter().map(|s| (*s).to_owned()).collect();
        let (_, problems) = Columns::new(&header, &["name", "type"], &["id"], &["name", "type"]);
        let columns: Vec<&str> = problems.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(columns, ["colour", "name", "type"]);
    }
}
