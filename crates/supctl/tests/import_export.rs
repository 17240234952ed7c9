//! `supctl expert|institution import|export --output json` against a running registry
//! (docs/import-export.md): progress on standard error while the registry checks the rows, the
//! result as JSON on standard output; a file with a bad row imports nothing, names the row and the
//! column and exits with 13 (INVALID_ARGUMENT); `--validate-only` stores nothing; an export is
//! written only whole (its SHA-256 checked), reads back as the table that was imported, and is a
//! valid import file for another registry.

use std::{path::Path, process::Command};

use chrono::{Datelike, Duration};
use sha2::Digest;
use supervision_proto::{
    common::{FileFormat, PageRequest},
    registry::{
        ExpertStatus, GetExpertRequest, ListExpertsRequest, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use supervision_registry::sheets;
use testkit::{Backend, Role, RunningService, on_both_backends, spawn_registry, token};

on_both_backends!(
    institutions_import_from_csv_all_or_nothing_and_export_as_gb18030,
    experts_import_from_xlsx_all_or_nothing_and_export_again,
);

/// supctl's exit code for INVALID_ARGUMENT (10 + the gRPC code).
const INVALID_ARGUMENT: i32 = 13;

/// What a supctl run left: its exit code, stdout and stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON on standard output (printed on success and for bad rows alike).
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// The (row, column) of every bad row the result names.
    fn errors(&self) -> Vec<(i64, String)> {
        self.json()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["row"].as_i64().unwrap(), e["column"].as_str().unwrap().to_owned()))
            .collect()
    }
}

/// Runs supctl against `registry` as CITY_ADMIN.
fn supctl(registry: &RunningService, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--registry", &format!("http://{}", registry.addr)])
        .args(["--token", &token(Role::CityAdmin, None)])
        .args(["--config", "/dev/null"])
        .args(args)
        .output()
        .expect("supctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A resident ID number (GB 11643) of person `n`, born in March 1975 in Xinhui.
fn resident(n: u32) -> String {
    let body = format!("440705197503{:02}{:03}", 10 + n, 200 + n);
    let sum: u32 = body.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * ((1 << (17 - i)) % 11)).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// A unified social credit code (GB 32100) of organisation `n`.
fn credit_code(n: u32) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let body = format!("91440700MA{:07}", 4_200_000 + n);
    let sum: usize = body
        .bytes()
        .enumerate()
        .map(|(i, b)| CHARS.iter().position(|c| *c == b).unwrap() * (3usize.pow(i as u32) % 31))
        .sum();
    format!("{body}{}", CHARS[(31 - sum % 31) % 31] as char)
}

fn strings(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// The cell of `column` in `row` of a sheet read back.
fn cell<'a>(sheet: &'a sheets::Sheet, row: &'a [String], column: &str) -> &'a str {
    let at = sheet.header.iter().position(|h| h == column).unwrap_or_else(|| panic!("no column {column}"));
    &row[at]
}

/// Checks what `export` printed against the file it wrote; the file's bytes.
fn exported(run: &Run, file: &Path) -> Vec<u8> {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let record = run.json();
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(record["file"], path_arg(file));
    assert_eq!(record["bytes"].as_u64(), Some(bytes.len() as u64));
    let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(record["sha256"].as_str(), Some(digest.as_str()), "the SHA-256 the registry sent, checked");
    bytes
}

async fn institution_names(registry: &RunningService) -> Vec<String> {
    let mut c = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let listed = c.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner().institutions;
    let mut names: Vec<String> = listed.into_iter().map(|i| i.name).collect();
    names.sort();
    names
}

async fn institutions_import_from_csv_all_or_nothing_and_export_as_gb18030(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let header = supervision_registry::transfer::INSTITUTION_COLUMNS;
    let (school, technical) = (credit_code(1), credit_code(2));

    // A UTF-8 CSV: a school, its studio (a sub-unit naming the parent by credit code), another school.
    let good = dir.path().join("institutions.csv");
    let rows = vec![
        strings(&[
            "VOCATIONAL_TRAINING_SCHOOL",
            "江门市导入职业培训学校",
            &school,
            "",
            "440703",
            "蓬江区导入路 1 号",
            "陈校长",
        ]),
        strings(&["STUDIO", "导入学校技能大师工作室", "", &school, "440703", "", ""]),
        strings(&["technical-school", "江门市导入技工学校", &technical, "", "新会区", "", ""]),
    ];
    std::fs::write(&good, sheets::write(FileFormat::CsvUtf8, header, &rows).unwrap()).unwrap();
    let run = supctl(&registry, &["institution", "import", path_arg(&good)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("checked 3/3 rows, 0 bad so far"), "progress on stderr: {}", run.stderr);
    let result = run.json();
    assert_eq!(result["committed"], true);
    assert_eq!((result["rows_total"].as_i64(), result["rows_imported"].as_i64()), (Some(3), Some(3)));
    assert!(result["import_id"].as_str().unwrap().starts_with("imp_"));
    let names = institution_names(&registry).await;
    assert_eq!(names, ["导入学校技能大师工作室", "江门市导入技工学校", "江门市导入职业培训学校"]);

    // Two more, the second with a credit code whose check character is wrong: nothing stored.
    let bad = dir.path().join("more-institutions.csv");
    let mut wrong = credit_code(4);
    wrong.replace_range(17.., if wrong.ends_with('0') { "1" } else { "0" });
    let rows = vec![
        strings(&["TECHNICAL_SCHOOL", "江门市第三技工学校", &credit_code(3), "", "台山市", "", ""]),
        strings(&["TECHNICAL_SCHOOL", "江门市第四技工学校", &wrong, "", "440781", "", ""]),
    ];
    std::fs::write(&bad, sheets::write(FileFormat::CsvUtf8, header, &rows).unwrap()).unwrap();
    let run = supctl(&registry, &["institution", "import", path_arg(&bad)]);
    assert_eq!(run.code, INVALID_ARGUMENT, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(run.errors(), [(3, "credit_code".to_owned())], "file row 3 (the header is row 1)");
    assert_eq!(run.json()["committed"], false);
    assert_eq!(run.json()["rows_imported"].as_i64(), Some(0));
    assert!(run.stderr.contains("checked 2/2 rows, 1 bad so far"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was imported"), "{}", run.stderr);
    assert_eq!(institution_names(&registry).await.len(), 3, "the good row was not stored either");

    // Exported as GB18030 CSV: the same three, parents by credit code.
    let export = dir.path().join("export.csv");
    let run = supctl(&registry, &["institution", "export", "--file", path_arg(&export), "--format", "csv-gb18030"]);
    let bytes = exported(&run, &export);
    assert!(std::str::from_utf8(&bytes).is_err(), "GB18030, not UTF-8");
    let sheet = sheets::read(FileFormat::CsvGb18030, &bytes).unwrap();
    assert_eq!(sheet.header[..2], ["id", "status"]);
    assert_eq!(sheet.rows.len(), 3);
    let studio =
        sheet.rows.iter().map(|(_, r)| r).find(|r| cell(&sheet, r, "name") == "导入学校技能大师工作室").unwrap();
    assert_eq!(cell(&sheet, studio, "parent_credit_code"), school);
    assert_eq!(cell(&sheet, studio, "county"), "440703");
    // Only Xinhui's with --county.
    let xinhui = dir.path().join("xinhui.xlsx");
    let run = supctl(&registry, &["institution", "export", "--file", path_arg(&xinhui), "--county", "440705"]);
    let sheet = sheets::read(FileFormat::Xlsx, &exported(&run, &xinhui)).unwrap();
    let names: Vec<&str> = sheet.rows.iter().map(|(_, r)| cell(&sheet, r, "name")).collect();
    assert_eq!(names, ["江门市导入技工学校"]);

    // The export is an import file again (read as GB18030 whichever CSV format is named).
    let other = spawn_registry(backend).await;
    let run = supctl(&other, &["institution", "import", path_arg(&export), "--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "--quiet prints no progress: {}", run.stderr);
    assert_eq!(run.json()["rows_imported"].as_i64(), Some(3));
    assert_eq!(institution_names(&other).await, institution_names(&registry).await);
}

/// The experts of `registry`, each as (name, ID number in full, status).
async fn experts(registry: &RunningService) -> Vec<(String, String, i32)> {
    let mut c = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let page = Some(PageRequest { page_size: 100, page_token: String::new() });
    let listed = c.list_experts(ListExpertsRequest { page, ..Default::default() }).await.unwrap().into_inner();
    let mut found = Vec::new();
    for e in listed.experts {
        let e = c.get_expert(GetExpertRequest { id: e.id }).await.unwrap().into_inner().expert.unwrap();
        let profile = e.profile.unwrap();
        found.push((profile.name, profile.identity.unwrap().number, e.status));
    }
    found.sort();
    found
}

async fn experts_import_from_xlsx_all_or_nothing_and_export_again(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let decided = (chrono::Utc::now() + Duration::hours(8)).date_naive() - Duration::days(200);
    // Only some columns, in an order of the file's own (the header names them).
    let header = [
        "name",
        "kind",
        "id_type",
        "id_number",
        "county",
        "mobile",
        "categories",
        "category_evidence",
        "certificate_number",
        "decision_date",
        "term_start",
        "trained",
    ];
    let counties = ["440705", "新会区", "TAISHAN", "440703"];
    let row = |n: u32| {
        let certificate = format!("JMSE-{}-{:05}", decided.year(), 40 + n);
        strings(&[
            &format!("导入专家{n}"),
            "INDIVIDUAL",
            "RESIDENT_ID_CARD",
            &resident(n),
            counties[n as usize % counties.len()],
            &format!("1392750{:04}", 100 + n),
            "TECHNICIAN;EDUCATOR",
            "技师证书",
            &certificate,
            &decided.to_string(),
            &decided.to_string(),
            "是",
        ])
    };

    // A CSV whose rows 3 and 4 are bad: nothing is stored, both are named.
    let bad = dir.path().join("pool-bad.csv");
    let mut rows: Vec<Vec<String>> = (0..3).map(row).collect();
    let mut number = resident(1);
    number.replace_range(17.., if number.ends_with('0') { "1" } else { "0" });
    rows[1][3] = number;
    rows[2][6] = "ASTRONAUT".into();
    std::fs::write(&bad, sheets::write(FileFormat::CsvUtf8, &header, &rows).unwrap()).unwrap();
    let run = supctl(&registry, &["expert", "import", path_arg(&bad)]);
    assert_eq!(run.code, INVALID_ARGUMENT, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(run.errors(), [(3, "id_number".to_owned()), (4, "categories".to_owned())]);
    assert_eq!((run.json()["committed"].as_bool(), run.json()["rows_imported"].as_i64()), (Some(false), Some(0)));
    assert!(run.stderr.contains("checked 3/3 rows, 2 bad so far"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was imported"), "{}", run.stderr);
    assert!(experts(&registry).await.is_empty(), "the good row 2 was not stored either");

    // Four good experts in XLSX: checked only first, then imported.
    let good = dir.path().join("pool.xlsx");
    let rows: Vec<Vec<String>> = (0..4).map(row).collect();
    std::fs::write(&good, sheets::write(FileFormat::Xlsx, &header, &rows).unwrap()).unwrap();
    let run = supctl(&registry, &["expert", "import", path_arg(&good), "--validate-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.json()["committed"].as_bool(), run.json()["rows_imported"].as_i64()), (Some(false), Some(0)));
    assert!(experts(&registry).await.is_empty(), "--validate-only stores nothing");
    let run = supctl(&registry, &["expert", "import", path_arg(&good)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("checked 4/4 rows, 0 bad so far"), "progress on stderr: {}", run.stderr);
    assert_eq!((run.json()["committed"].as_bool(), run.json()["rows_imported"].as_i64()), (Some(true), Some(4)));
    let imported = experts(&registry).await;
    let expected: Vec<(String, String, i32)> =
        (0..4).map(|n| (format!("导入专家{n}"), resident(n), ExpertStatus::Active as i32)).collect();
    assert_eq!(imported, expected, "appointed experts (a term each), ID numbers whole");

    // Exported as XLSX: every expert with the ID number in full (CITY_ADMIN) and the term.
    let export = dir.path().join("experts.xlsx");
    let run = supctl(&registry, &["expert", "export", "--file", path_arg(&export)]);
    let sheet = sheets::read(FileFormat::Xlsx, &exported(&run, &export)).unwrap();
    assert_eq!(sheet.header[..3], ["id", "status", "term_end"]);
    let mut read: Vec<(String, String, String)> = sheet
        .rows
        .iter()
        .map(|(_, r)| {
            let certificate = cell(&sheet, r, "certificate_number").to_owned();
            (cell(&sheet, r, "name").to_owned(), cell(&sheet, r, "id_number").to_owned(), certificate)
        })
        .collect();
    read.sort();
    let written: Vec<(String, String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[3].clone(), r[8].clone())).collect();
    assert_eq!(read, written);
    // Filtered by county: the two Xinhui experts (given as a code and as a name).
    let xinhui = dir.path().join("xinhui.csv");
    let run = supctl(&registry, &["expert", "export", "--file", path_arg(&xinhui), "--county", "新会区"]);
    let sheet = sheets::read(FileFormat::CsvUtf8, &exported(&run, &xinhui)).unwrap();
    let mut names: Vec<&str> = sheet.rows.iter().map(|(_, r)| cell(&sheet, r, "name")).collect();
    names.sort_unstable();
    assert_eq!(names, ["导入专家0", "导入专家1"]);
    assert!(sheet.rows.iter().all(|(_, r)| cell(&sheet, r, "county") == "440705"));

    // The export is an import file again: another registry takes it whole.
    let other = spawn_registry(backend).await;
    let run = supctl(&other, &["expert", "import", path_arg(&export)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["rows_imported"].as_i64(), Some(4));
    assert_eq!(experts(&other).await, imported);
}
