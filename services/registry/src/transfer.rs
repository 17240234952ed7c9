//! ImportExperts, ImportInstitutions and their exports (issue 5 item 10). The columns are in
//! docs/import-export.md; the files are read and written by `sheets`.
//!
//! An import is all or nothing (ImportResult): every row is checked and every bad row reported
//! with its row number and column; the rows are stored, one after the other, under a savepoint
//! inside the idempotency claim's transaction, and if any row is bad (or `validate_only` is set)
//! the savepoint is rolled back, so the file stores nothing, and only the answer is kept under
//! the request id. A row is stored through the very use cases CreateExpert and CreateInstitution
//! run (personal data encrypted and blind-indexed there, each row's audit entry written there),
//! and an expert's existing term through `appointments::record_existing_term`.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use sqlx::{Any, Transaction};
use supervision_kit::{Bureau, Caller, Db, Page, SharedClock, idempotency::Command, personal::PersonalDataKey};
use supervision_proto::{
    common::{self, FileFormat, locality::Place},
    registry as pb,
};
use supervision_reference::{Reference, shanghai_today};
use tonic::Status;
use tonic_types::StatusExt;

use crate::{
    appointments::{self, ExistingTerm},
    convert::{self, experts as cx},
    domain::{InstitutionId, LegalStanding, Visibility},
    error::Error,
    experts, institutions, lifecycle,
    sheets::{self, Columns, Sheet},
    store::{self, appointments as appointment_sql, experts as expert_sql},
};

/// Progress is sent after every this many rows.
pub const PROGRESS_EVERY: usize = 250;
/// The longest certificate number kept as issued.
const MAX_CERTIFICATE_CHARS: usize = 40;

/// The columns of an expert file, in the order exports write them.
pub const EXPERT_COLUMNS: &[&str] = &[
    "kind",
    "name",
    "gender",
    "birth_date",
    "id_type",
    "id_number",
    "id_country",
    "county",
    "outside_jiangmen",
    "mobile",
    "email",
    "address",
    "bank_holder",
    "bank_name",
    "bank_branch",
    "bank_account",
    "employer_name",
    "employer_credit_code",
    "employer_post",
    "employer_since",
    "represented_unit_name",
    "represented_unit_credit_code",
    "categories",
    "category_evidence",
    "category_note",
    "specialties",
    "professional_title",
    "civil_servant_status",
    "civil_servant_since",
    "certificate_number",
    "decision_date",
    "term_start",
    "term_number",
    "trained",
    "yearly_acceptances",
];
/// Columns an export adds before the others; an import ignores them.
pub const EXPERT_EXPORT_ONLY: &[&str] = &["id", "status", "term_end"];
const EXPERT_REQUIRED: &[&str] = &["kind", "name", "id_type", "id_number", "categories", "category_evidence"];

/// The columns of an institution file.
pub const INSTITUTION_COLUMNS: &[&str] =
    &["type", "name", "credit_code", "parent_credit_code", "county", "address", "head"];
/// Columns an institution export adds before the others; an import ignores them.
pub const INSTITUTION_EXPORT_ONLY: &[&str] = &["id", "status"];
const INSTITUTION_REQUIRED: &[&str] = &["type", "name", "county"];

/// Where ImportProgress goes while an import runs.
pub type Progress<'a> = &'a (dyn Fn(pb::ImportProgress) + Send + Sync);

/// What one import run needs from the service.
#[derive(Debug)]
pub struct ImportContext<'a> {
    pub db: &'a Db,
    pub clock: &'a SharedClock,
    pub key: &'a PersonalDataKey,
    pub reference: &'a Reference,
    pub caller: &'a Caller,
    pub command: &'a Command,
    pub validate_only: bool,
}

/// Bad rows found so far, and whether rows are still being stored.
struct Run {
    errors: Vec<pb::ImportRowError>,
    storing: bool,
    stored: i32,
}

impl Run {
    /// Records a bad cell; a second problem in the same cell (a consequence of the first) is
    /// left out.
    fn row_error(&mut self, row: i32, column: &str, message: impl Into<String>) {
        if self.errors.iter().any(|e| e.row == row && e.column == column) {
            return;
        }
        self.errors.push(pb::ImportRowError { row, column: column.to_owned(), message: message.into() });
    }
}

const SAVEPOINT: &str = "SAVEPOINT import_rows";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT import_rows";
const RELEASE: &str = "RELEASE SAVEPOINT import_rows";

async fn exec(tx: &mut Transaction<'static, Any>, sql: &'static str) -> Result<(), Status> {
    sqlx::query(sql).execute(&mut **tx).await.map_err(Error::from)?;
    Ok(())
}

impl Run {
    /// Stops storing at the first bad row: what was stored is rolled back, the rest is only checked.
    async fn stop_storing(&mut self, tx: &mut Transaction<'static, Any>) -> Result<(), Status> {
        if self.storing {
            exec(tx, ROLLBACK).await?;
            self.storing = false;
            self.stored = 0;
        }
        Ok(())
    }

    async fn finish(
        mut self,
        tx: &mut Transaction<'static, Any>,
        import_id: String,
        total: usize,
    ) -> Result<pb::ImportResult, Status> {
        if !self.errors.is_empty() {
            self.stop_storing(tx).await?;
        }
        let committed = self.storing;
        if self.storing {
            exec(tx, RELEASE).await?;
        }
        self.errors.sort_by(|a, b| a.row.cmp(&b.row).then_with(|| a.column.cmp(&b.column)));
        Ok(pb::ImportResult {
            import_id,
            committed,
            rows_total: count(total),
            rows_imported: if committed { self.stored } else { 0 },
            errors: self.errors,
        })
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The import's id: the audit entity of its rows' entries is the row's record, this id is the
/// answer's handle.
fn import_id() -> String {
    supervision_kit::vocab::new_prefixed_id("imp_")
}

/// A failure the caller can fix in the row (a field violation, a taken document, a refused
/// state) becomes row errors; a failure of the service itself ends the import.
fn row_errors(err: Status, column_of: fn(&str) -> &'static str) -> Result<Vec<(String, String)>, Status> {
    use tonic::Code;
    if matches!(err.code(), Code::Internal | Code::Unavailable | Code::Unknown | Code::DataLoss | Code::Aborted) {
        return Err(err);
    }
    let details = err.get_error_details();
    let violations: Vec<(String, String)> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|f| {
                    let column = column_of(&f.field);
                    let column = if column.is_empty() { f.field.clone() } else { column.to_owned() };
                    (column, f.description.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    if violations.is_empty() { Ok(vec![(String::new(), err.message().to_owned())]) } else { Ok(violations) }
}

fn progress_of(run: &Run, checked: usize, total: usize) -> pb::ImportProgress {
    pb::ImportProgress {
        rows_checked: count(checked),
        rows_total: count(total),
        errors_so_far: count(run.errors.len()),
    }
}

// ------------------------------------------------------------------------------------------
// Cells
// ------------------------------------------------------------------------------------------

/// Problems with a row's cells, as (column, message).
#[derive(Default)]
struct Cells {
    problems: Vec<(String, String)>,
}

impl Cells {
    fn bad(&mut self, column: &str, message: impl Into<String>) {
        if self.problems.iter().any(|(c, _)| c == column) {
            return;
        }
        self.problems.push((column.to_owned(), message.into()));
    }

    /// A contract enum by its name without the prefix (`TECHNICIAN`, `resident-id-card`); 0 when blank.
    fn coded(&mut self, text: &str, column: &str, prefix: &str, from_name: fn(&str) -> Option<i32>, hint: &str) -> i32 {
        if text.is_empty() {
            return 0;
        }
        let name = format!("{prefix}{}", text.trim().to_ascii_uppercase().replace(['-', ' '], "_"));
        match from_name(&name) {
            Some(value) if value != 0 => value,
            _ => {
                self.bad(column, format!("`{text}` is not one of {hint}"));
                0
            }
        }
    }

    fn date(&mut self, text: &str, column: &str) -> Option<common::Date> {
        if text.is_empty() {
            return None;
        }
        match NaiveDate::parse_from_str(text, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d")) {
            Ok(d) => Some(common::Date {
                year: d.year(),
                month: i32::try_from(d.month()).unwrap_or(0),
                day: i32::try_from(d.day()).unwrap_or(0),
            }),
            Err(_) => {
                self.bad(column, format!("`{text}` is not a date (YYYY-MM-DD)"));
                None
            }
        }
    }

    fn flag(&mut self, text: &str, column: &str) -> bool {
        match text.to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "n" | "0" | "否" => false,
            "true" | "yes" | "y" | "1" | "是" => true,
            _ => {
                self.bad(column, format!("`{text}` is not yes or no"));
                false
            }
        }
    }

    /// A county by division code (`440705`), name (`XINHUI`) or Chinese name (`新会区`); 0 when blank.
    fn county(&mut self, text: &str, column: &str) -> i32 {
        if text.is_empty() {
            return 0;
        }
        let by_code = Bureau::from_division_code(text);
        let by_name = (1..=8).filter_map(Bureau::from_proto).find(|b| {
            b.chinese_name() == text
                || b.to_proto().as_str_name().strip_prefix("BUREAU_CODE_") == Some(text.to_ascii_uppercase().as_str())
        });
        match by_code.or(by_name) {
            Some(b) => b.to_proto() as i32,
            None => {
                self.bad(column, format!("`{text}` is not a county of Jiangmen (a division code such as 440705)"));
                0
            }
        }
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split([';', '；', ',', '，']).map(str::trim).filter(|s| !s.is_empty())
}

fn date_text(d: Option<&common::Date>) -> String {
    d.filter(|d| d.year != 0).map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default()
}

fn name_without<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

// ------------------------------------------------------------------------------------------
// Experts
// ------------------------------------------------------------------------------------------

/// The column of an expert file behind a field path of CreateExpertRequest.
fn expert_column(path: &str) -> &'static str {
    let mut plain = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    const MAP: &[(&str, &str)] = &[
        ("profile.kind", "kind"),
        ("profile.name", "name"),
        ("profile.gender", "gender"),
        ("profile.birth_date", "birth_date"),
        ("profile.identity.type", "id_type"),
        ("profile.identity.issuing_country", "id_country"),
        ("profile.identity", "id_number"),
        ("profile.locality.outside_jiangmen", "outside_jiangmen"),
        ("profile.locality", "county"),
        ("profile.contact.email", "email"),
        ("profile.contact.address", "address"),
        ("profile.contact", "mobile"),
        ("profile.bank_account.holder_name", "bank_holder"),
        ("profile.bank_account.bank_name", "bank_name"),
        ("profile.bank_account.branch_name", "bank_branch"),
        ("profile.bank_account", "bank_account"),
        ("profile.employer.organisation.credit_code", "employer_credit_code"),
        ("profile.employer.post", "employer_post"),
        ("profile.employer.since", "employer_since"),
        ("profile.employer", "employer_name"),
        ("profile.represented_unit.credit_code", "represented_unit_credit_code"),
        ("profile.represented_unit", "represented_unit_name"),
        ("profile.categories.evidence", "category_evidence"),
        ("profile.categories.note", "category_note"),
        ("profile.categories", "categories"),
        ("profile.specialties", "specialties"),
        ("profile.professional_title", "professional_title"),
        ("civil_servant_status", "civil_servant_status"),
        ("civil_servant_since", "civil_servant_since"),
    ];
    MAP.iter().find(|(prefix, _)| plain.starts_with(prefix)).map_or("", |(_, column)| column)
}

/// One checked row of an expert file.
struct ExpertRow {
    new: cx::NewExpert,
    term: Option<ExistingTerm>,
    trained: bool,
    acceptances: Vec<(i32, i32)>,
}

/// Reads a row into a CreateExpertRequest and checks it as CreateExpert does, plus the columns
/// of an existing appointment. Problems as (column, message).
fn expert_row(
    columns: &Columns,
    row: &[String],
    today: NaiveDate,
    reference: &Reference,
) -> Result<ExpertRow, Vec<(String, String)>> {
    let cell = |name: &str| columns.cell(row, name);
    let mut c = Cells::default();
    let certificate_number = cell("certificate_number").to_owned();
    let decision_date = c.date(cell("decision_date"), "decision_date");
    let term_start = c.date(cell("term_start"), "term_start");
    let has_term = !certificate_number.is_empty() || decision_date.is_some() || term_start.is_some();
    let evidence = Some(common::Evidence { description: cell("category_evidence").to_owned(), documents: vec![] });
    let categories: Vec<pb::CategoryHolding> = list(cell("categories"))
        .map(|name| pb::CategoryHolding {
            category: c.coded(
                name,
                "categories",
                "EXPERT_CATEGORY_",
                |n| common::ExpertCategory::from_str_name(n).map(|v| v as i32),
                "the 11 categories of article 5 (e.g. TECHNICIAN)",
            ),
            evidence: evidence.clone(),
            valid_until: None,
            // A category of an appointed expert was verified when they were appointed.
            verified: has_term,
            verified_by: None,
            verified_date: if has_term { decision_date } else { None },
            note: cell("category_note").to_owned(),
        })
        .collect();
    let specialties = list(cell("specialties"))
        .map(|code| common::Specialty {
            code: Some(common::SpecialtyCode { code: code.to_owned(), name: String::new() }),
            level: 0,
            note: String::new(),
        })
        .collect();
    let locality = match (cell("county"), cell("outside_jiangmen")) {
        ("", "") => None,
        (county, "") => Some(common::Locality { place: Some(Place::County(c.county(county, "county"))) }),
        ("", place) => Some(common::Locality { place: Some(Place::OutsideJiangmen(place.to_owned())) }),
        _ => {
            c.bad("outside_jiangmen", "give either county or outside_jiangmen, not both");
            None
        }
    };
    let organisation = |name: &str, code: &str| {
        (!name.is_empty() || !code.is_empty()).then(|| common::Organisation {
            name: name.to_owned(),
            credit_code: code.to_owned(),
            institution_id: String::new(),
        })
    };
    let employer = organisation(cell("employer_name"), cell("employer_credit_code")).map(|o| common::Employer {
        organisation: Some(o),
        post: cell("employer_post").to_owned(),
        since: c.date(cell("employer_since"), "employer_since"),
        employer_key: String::new(),
    });
    let bank = [cell("bank_holder"), cell("bank_name"), cell("bank_branch"), cell("bank_account")];
    let request = pb::CreateExpertRequest {
        request_id: String::new(),
        profile: Some(pb::ExpertProfile {
            kind: c.coded(
                cell("kind"),
                "kind",
                "EXPERT_KIND_",
                |n| common::ExpertKind::from_str_name(n).map(|v| v as i32),
                "INDIVIDUAL or UNIT_REPRESENTATIVE",
            ),
            name: cell("name").to_owned(),
            gender: c.coded(
                cell("gender"),
                "gender",
                "GENDER_",
                |n| common::Gender::from_str_name(n).map(|v| v as i32),
                "MALE or FEMALE",
            ),
            birth_date: c.date(cell("birth_date"), "birth_date"),
            identity: Some(common::IdentityDocument {
                r#type: c.coded(
                    cell("id_type"),
                    "id_type",
                    "IDENTITY_DOCUMENT_TYPE_",
                    |n| common::IdentityDocumentType::from_str_name(n).map(|v| v as i32),
                    "RESIDENT_ID_CARD, PERMANENT_RESIDENCE_CARD, HMT_RESIDENCE_PERMIT, HOME_RETURN_PERMIT, \
                     TAIWAN_COMPATRIOT_PERMIT or PASSPORT",
                ),
                number: cell("id_number").to_owned(),
                issuing_country: cell("id_country").to_owned(),
                masked: false,
            }),
            other_identities: vec![],
            locality,
            contact: Some(common::ContactDetails {
                mobile: cell("mobile").to_owned(),
                email: cell("email").to_owned(),
                address: cell("address").to_owned(),
                masked: false,
            }),
            bank_account: bank.iter().any(|b| !b.is_empty()).then(|| common::BankAccount {
                holder_name: bank[0].to_owned(),
                bank_name: bank[1].to_owned(),
                branch_name: bank[2].to_owned(),
                account_number: bank[3].to_owned(),
                masked: false,
            }),
            employer,
            represented_unit: organisation(cell("represented_unit_name"), cell("represented_unit_credit_code")),
            categories,
            conditions: vec![],
            specialties,
            professional_title: cell("professional_title").to_owned(),
        }),
        civil_servant_status: if cell("civil_servant_status").is_empty() {
            common::CivilServantStatus::None as i32
        } else {
            c.coded(
                cell("civil_servant_status"),
                "civil_servant_status",
                "CIVIL_SERVANT_STATUS_",
                |n| common::CivilServantStatus::from_str_name(n).map(|v| v as i32),
                "NONE, CIVIL_SERVANT, REFERENCE_MANAGED or PUBLIC_INSTITUTION_STAFF",
            )
        },
        civil_servant_since: c.date(cell("civil_servant_since"), "civil_servant_since"),
        existing_appointment: None,
    };
    let trained = c.flag(cell("trained"), "trained");
    let term =
        existing_term(&mut c, &certificate_number, decision_date, term_start, cell("term_number"), today, reference);
    let acceptances = acceptances(&mut c, cell("yearly_acceptances"), has_term, today);
    let new = match cx::new_expert(&request, today) {
        Ok(new) => Some(new),
        Err(status) => {
            match row_errors(status, expert_column) {
                Ok(found) => {
                    for (column, message) in found {
                        c.bad(&column, message);
                    }
                }
                Err(status) => c.bad("", status.message()),
            }
            None
        }
    };
    // Membership of the installed occupational classification, as CreateExpert checks it.
    for s in new.iter().flat_map(|n| &n.profile.specialties) {
        if let Err(problem) = reference.specialties().check(s.code.as_str()) {
            c.bad("specialties", format!("{}: {problem}", s.code.as_str()));
        }
    }
    match new {
        Some(new) if c.problems.is_empty() => Ok(ExpertRow { new, term, trained, acceptances }),
        _ => Err(c.problems),
    }
}

fn existing_term(
    c: &mut Cells,
    certificate_number: &str,
    decision_date: Option<common::Date>,
    term_start: Option<common::Date>,
    term_number: &str,
    today: NaiveDate,
    reference: &Reference,
) -> Option<ExistingTerm> {
    let day = |d: Option<common::Date>| {
        d.and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
    };
    let (decision, start) = (day(decision_date), day(term_start));
    if certificate_number.is_empty() && decision.is_none() && start.is_none() {
        if !term_number.is_empty() {
            c.bad("term_number", "is given without the term (certificate_number, decision_date, term_start)");
        }
        return None;
    }
    if certificate_number.is_empty() {
        c.bad("certificate_number", "an appointed expert's certificate number is required");
    } else if certificate_number.chars().count() > MAX_CERTIFICATE_CHARS {
        c.bad("certificate_number", format!("at most {MAX_CERTIFICATE_CHARS} characters"));
    }
    let editions = reference.editions();
    for (column, date) in [("decision_date", decision), ("term_start", start)] {
        match date {
            None => c.bad(column, "is required for an appointed expert"),
            Some(d) if d > today => c.bad(column, "must not be in the future"),
            Some(d) if editions.edition_in_force(d).is_err() => {
                c.bad(column, format!("no policy edition is in force on {d} (D6)"));
            }
            Some(_) => {}
        }
    }
    if let (Some(d), Some(s)) = (decision, start)
        && s < d
    {
        c.bad("term_start", "must not be before decision_date");
    }
    let number = if term_number.is_empty() {
        1
    } else {
        match term_number.parse::<i32>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => {
                c.bad("term_number", format!("`{term_number}` is not a term number (1 for a first appointment)"));
                1
            }
        }
    };
    Some(ExistingTerm {
        certificate_number: certificate_number.to_owned(),
        decision_date: decision?,
        term_start: start?,
        term_number: number,
    })
}

/// `2023:ACCEPTING;2024:NON_ACCEPTING`: the D5 classification of past years.
fn acceptances(c: &mut Cells, text: &str, has_term: bool, today: NaiveDate) -> Vec<(i32, i32)> {
    let column = "yearly_acceptances";
    let mut out: Vec<(i32, i32)> = Vec::new();
    for item in list(text) {
        let Some((year, class)) = item.split_once(':').or_else(|| item.split_once('：')) else {
            c.bad(column, format!("`{item}` is not YEAR:CLASSIFICATION (e.g. 2023:ACCEPTING)"));
            continue;
        };
        let class = c.coded(
            class,
            column,
            "YEAR_CLASSIFICATION_",
            |n| pb::YearClassification::from_str_name(n).map(|v| v as i32),
            "ACCEPTING, NON_ACCEPTING or NEUTRAL",
        );
        match year.trim().parse::<i32>() {
            Ok(y) if (2000..=today.year()).contains(&y) => {
                if out.iter().any(|(seen, _)| *seen == y) {
                    c.bad(column, format!("year {y} is given twice"));
                } else if class != 0 {
                    out.push((y, class));
                }
            }
            _ => c.bad(column, format!("`{year}` is not a past or current year")),
        }
    }
    if !out.is_empty() && !has_term {
        c.bad(column, "past dispatch outcomes need the expert's term (certificate_number, decision_date, term_start)");
    }
    out.sort_unstable();
    out
}

/// Checks every row of an expert file and, if all are good and `validate_only` is not set,
/// stores them; see the module's description.
pub async fn import_experts(
    tx: &mut Transaction<'static, Any>,
    ctx: &ImportContext<'_>,
    sheet: Sheet,
    progress: Progress<'_>,
) -> Result<pb::ImportResult, Status> {
    let today = shanghai_today(ctx.clock);
    let total = sheet.rows.len();
    let (columns, header_problems) = Columns::new(&sheet.header, EXPERT_COLUMNS, EXPERT_EXPORT_ONLY, EXPERT_REQUIRED);
    let mut run = Run { errors: Vec::new(), storing: !ctx.validate_only, stored: 0 };
    for (column, message) in header_problems {
        run.row_error(1, &column, message);
    }
    if total == 0 {
        run.row_error(1, "", "the file holds no data rows");
    }
    if !run.errors.is_empty() {
        run.storing = false;
        return run.finish(tx, import_id(), total).await;
    }
    if run.storing {
        exec(tx, SAVEPOINT).await?;
    }
    // Documents and certificate numbers seen in earlier rows, with the row.
    let mut documents: HashMap<String, i32> = HashMap::new();
    let mut certificates: HashMap<String, i32> = HashMap::new();
    for (i, (number, cells)) in sheet.rows.iter().enumerate() {
        let number = *number;
        match expert_row(&columns, cells, today, ctx.reference) {
            Err(problems) => {
                for (column, message) in problems {
                    run.row_error(number, &column, message);
                }
                run.stop_storing(tx).await?;
            }
            Ok(row) => {
                let mut clash = Vec::new();
                for index in expert_sql::blind_indexes(ctx.key, &row.new.profile) {
                    if let Some(first) = documents.insert(index.clone(), number) {
                        clash.push(("id_number", format!("the same identity document as row {first}")));
                    } else if !run.storing
                        && expert_sql::document_holder(tx, &index).await.map_err(Error::from)?.is_some()
                    {
                        clash.push(("id_number", "an expert with this identity document is already registered".into()));
                    }
                }
                if let Some(term) = &row.term {
                    if let Some(first) = certificates.insert(term.certificate_number.clone(), number) {
                        clash.push(("certificate_number", format!("the same certificate number as row {first}")));
                    } else if appointment_sql::certificate_taken(tx, &term.certificate_number)
                        .await
                        .map_err(Error::from)?
                    {
                        clash.push(("certificate_number", "is already held by a term in the registry".into()));
                    }
                }
                if !clash.is_empty() {
                    for (column, message) in clash {
                        run.row_error(number, column, message);
                    }
                    run.stop_storing(tx).await?;
                } else if run.storing {
                    if let Err(status) = store_expert(tx, ctx, row).await {
                        for (column, message) in row_errors(status, expert_column)? {
                            run.row_error(number, &column, message);
                        }
                        run.stop_storing(tx).await?;
                    } else {
                        run.stored += 1;
                    }
                }
            }
        }
        if (i + 1) % PROGRESS_EVERY == 0 && i + 1 < total {
            progress(progress_of(&run, i + 1, total));
        }
    }
    progress(progress_of(&run, total, total));
    run.finish(tx, import_id(), total).await
}

async fn store_expert(tx: &mut Transaction<'static, Any>, c: &ImportContext<'_>, row: ExpertRow) -> Result<(), Status> {
    let expert = experts::create(tx, c.db, c.clock, c.key, c.caller, c.command, row.new).await?;
    if let Some(term) = &row.term {
        appointments::record_existing_term(tx, c.db, c.clock, c.reference, c.caller, c.command, &expert, term).await?;
    }
    if row.trained {
        expert_sql::set_trained(tx, &expert.id, c.clock.now()).await.map_err(Error::from)?;
    }
    for (year, classification) in row.acceptances {
        let acceptance = pb::YearlyAcceptance {
            expert_id: expert.id.to_string(),
            year,
            classification,
            revision: 1,
            acceptances: 0,
            non_acceptances: 0,
            neutral_outcomes: 0,
            source: pb::AcceptanceSource::Import as i32,
            record_time: None,
        };
        lifecycle::record_yearly(tx, c.db, c.clock, c.reference, c.caller, c.command, acceptance).await?;
    }
    Ok(())
}

/// An expert as a row of EXPERT_EXPORT_ONLY then EXPERT_COLUMNS, personal data as `visibility`
/// allows.
fn expert_cells(e: &pb::Expert, acceptances: &[(i32, i32)]) -> Vec<String> {
    let p = e.profile.clone().unwrap_or_default();
    let identity = p.identity.clone().unwrap_or_default();
    let contact = p.contact.clone().unwrap_or_default();
    let bank = p.bank_account.clone().unwrap_or_default();
    let employer = p.employer.clone().unwrap_or_default();
    let employer_org = employer.organisation.clone().unwrap_or_default();
    let unit = p.represented_unit.clone().unwrap_or_default();
    let (county, outside) = match p.locality.as_ref().and_then(|l| l.place.clone()) {
        Some(Place::County(c)) => {
            (Bureau::from_proto(c).map(|b| b.division_code().to_owned()).unwrap_or_default(), String::new())
        }
        Some(Place::OutsideJiangmen(place)) => (String::new(), place),
        None => (String::new(), String::new()),
    };
    let enum_name = |name: &'static str, prefix: &str| name_without(name, prefix).to_owned();
    let categories: Vec<String> = p
        .categories
        .iter()
        .map(|h| {
            enum_name(
                common::ExpertCategory::try_from(h.category).unwrap_or_default().as_str_name(),
                "EXPERT_CATEGORY_",
            )
        })
        .collect();
    let mut evidence: Vec<String> = Vec::new();
    for h in &p.categories {
        let text = h.evidence.as_ref().map(|e| e.description.clone()).unwrap_or_default();
        if !text.is_empty() && !evidence.contains(&text) {
            evidence.push(text);
        }
    }
    let note = p.categories.iter().map(|h| h.note.clone()).find(|n| !n.is_empty()).unwrap_or_default();
    let appointment = e.appointment.clone().unwrap_or_default();
    let has_term = e.appointment.is_some();
    let acceptances = acceptances
        .iter()
        .map(|(y, c)| {
            format!(
                "{y}:{}",
                name_without(
                    pb::YearClassification::try_from(*c).unwrap_or_default().as_str_name(),
                    "YEAR_CLASSIFICATION_"
                )
            )
        })
        .collect::<Vec<_>>()
        .join(";");
    vec![
        e.id.clone(),
        enum_name(pb::ExpertStatus::try_from(e.status).unwrap_or_default().as_str_name(), "EXPERT_STATUS_"),
        date_text(appointment.term.as_ref().and_then(|t| t.end.as_ref())),
        enum_name(common::ExpertKind::try_from(p.kind).unwrap_or_default().as_str_name(), "EXPERT_KIND_"),
        p.name.clone(),
        if p.gender == 0 {
            String::new()
        } else {
            enum_name(common::Gender::try_from(p.gender).unwrap_or_default().as_str_name(), "GENDER_")
        },
        date_text(p.birth_date.as_ref()),
        enum_name(
            common::IdentityDocumentType::try_from(identity.r#type).unwrap_or_default().as_str_name(),
            "IDENTITY_DOCUMENT_TYPE_",
        ),
        identity.number,
        identity.issuing_country,
        county,
        outside,
        contact.mobile,
        contact.email,
        contact.address,
        bank.holder_name,
        bank.bank_name,
        bank.branch_name,
        bank.account_number,
        employer_org.name,
        employer_org.credit_code,
        employer.post,
        date_text(employer.since.as_ref()),
        unit.name,
        unit.credit_code,
        categories.join(";"),
        evidence.join(";"),
        note,
        p.specialties.iter().filter_map(|s| s.code.as_ref().map(|c| c.code.clone())).collect::<Vec<_>>().join(";"),
        p.professional_title,
        enum_name(
            common::CivilServantStatus::try_from(e.civil_servant_status).unwrap_or_default().as_str_name(),
            "CIVIL_SERVANT_STATUS_",
        ),
        String::new(),
        appointment.certificate_number.clone(),
        date_text(appointment.decision_date.as_ref()),
        date_text(appointment.term.as_ref().and_then(|t| t.start.as_ref())),
        if has_term { appointment.term_number.to_string() } else { String::new() },
        if e.trained { "yes" } else { "no" }.to_owned(),
        acceptances,
    ]
}

/// The export file of the experts ExportExperts' filters match, personal data as `caller` may
/// see it; one audit entry records who took the copy and with which filters.
pub async fn export_experts(
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    req: &pb::ExportExpertsRequest,
) -> Result<(FileFormat, Vec<u8>), Status> {
    let format = sheets::table_format(req.format, "format")?;
    let today = shanghai_today(clock);
    let filter =
        pb::ListExpertsRequest { status: req.status, category: req.category, county: req.county, ..Default::default() };
    let mut listing = cx::expert_listing(&filter, today)?;
    let acceptances = all_acceptances(db).await?;
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        listing.page = Page { size: 500, after: after.clone() };
        let (items, next) = experts::list(db, key, listing.clone()).await?;
        for e in &items {
            let shown = cx::expert_to_proto(e, experts::visibility(caller, &e.id), today);
            rows.push(expert_cells(&shown, acceptances.get(e.id.as_str()).map_or(&[][..], Vec::as_slice)));
        }
        match next {
            Some(token) => after = Some(token),
            None => break,
        }
    }
    let header: Vec<&str> = EXPERT_EXPORT_ONLY.iter().chain(EXPERT_COLUMNS).copied().collect();
    let file = sheets::write(format, &header, &rows)?;
    audit_export(
        db,
        clock,
        caller,
        "ExportExperts",
        "expert_export",
        &rows.len(),
        serde_json::json!({
            "status": req.status, "category": req.category, "county": req.county, "format": req.format,
            "personal_data": if matches!(visibility_of(caller), Visibility::Full) { "full" } else { "masked" },
        }),
    )
    .await?;
    Ok((format, file))
}

/// Whether `caller` sees every expert's personal data in full (an EXPERT sees only their own).
fn visibility_of(caller: &Caller) -> Visibility {
    match caller.role {
        supervision_kit::Role::CityAdmin | supervision_kit::Role::CityReviewer | supervision_kit::Role::Auditor => {
            Visibility::Full
        }
        _ => Visibility::Masked,
    }
}

async fn all_acceptances(db: &Db) -> Result<HashMap<String, Vec<(i32, i32)>>, Status> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT expert_id, year, body FROM yearly_acceptances ORDER BY expert_id, year")
        .fetch_all(db.pool())
        .await
        .map_err(Error::from)?;
    let mut out: HashMap<String, Vec<(i32, i32)>> = HashMap::new();
    for row in rows {
        let expert: String = row.try_get("expert_id").map_err(Error::from)?;
        let year: i32 = row.try_get("year").map_err(Error::from)?;
        let body: String = row.try_get("body").map_err(Error::from)?;
        let held: pb::YearlyAcceptance = crate::incidents::decode_body("yearly_acceptances", &expert, &body)?;
        out.entry(expert).or_default().push((year, held.classification));
    }
    Ok(out)
}

async fn audit_export(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    method: &str,
    entity: &str,
    rows: &usize,
    filters: serde_json::Value,
) -> Result<(), Status> {
    let id = supervision_kit::vocab::new_prefixed_id("exf_");
    let method = format!("/supervision.registry.v1.RegistryService/{method}");
    let mut tx = db.begin_write().await.map_err(Error::from)?;
    let change = supervision_kit::audit::Change {
        method: &method,
        request_id: &id,
        entity_type: entity,
        entity_id: &id,
        action: "export",
        before: None,
        after: Some(serde_json::json!({ "rows": rows, "filters": filters })),
    };
    supervision_kit::audit::append(&mut tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Institutions
// ------------------------------------------------------------------------------------------

fn institution_column(path: &str) -> &'static str {
    INSTITUTION_COLUMNS.iter().find(|c| **c == path).copied().unwrap_or(if path == "parent_id" {
        "parent_credit_code"
    } else {
        ""
    })
}

/// Checks every row of an institution file and, if all are good, stores them. A sub-unit names
/// its parent by credit code: one registered already or on an earlier row of the file.
pub async fn import_institutions(
    tx: &mut Transaction<'static, Any>,
    c: &ImportContext<'_>,
    sheet: Sheet,
    progress: Progress<'_>,
) -> Result<pb::ImportResult, Status> {
    let total = sheet.rows.len();
    let (columns, header_problems) =
        Columns::new(&sheet.header, INSTITUTION_COLUMNS, INSTITUTION_EXPORT_ONLY, INSTITUTION_REQUIRED);
    let mut run = Run { errors: Vec::new(), storing: !c.validate_only, stored: 0 };
    for (column, message) in header_problems {
        run.row_error(1, &column, message);
    }
    if total == 0 {
        run.row_error(1, "", "the file holds no data rows");
    }
    if !run.errors.is_empty() {
        run.storing = false;
        return run.finish(tx, import_id(), total).await;
    }
    if run.storing {
        exec(tx, SAVEPOINT).await?;
    }
    // Credit codes of earlier rows: the row, and the id it was stored under (or would be).
    let mut codes: HashMap<String, (i32, InstitutionId)> = HashMap::new();
    for (i, (number, cells)) in sheet.rows.iter().enumerate() {
        let number = *number;
        let cell = |name: &str| columns.cell(cells, name);
        let mut cs = Cells::default();
        let kind = cs.coded(
            cell("type"),
            "type",
            "INSTITUTION_TYPE_",
            |n| pb::InstitutionType::from_str_name(n).map(|v| v as i32),
            "the institution types of article 3 (e.g. VOCATIONAL_TRAINING_SCHOOL)",
        );
        let county = cs.county(cell("county"), "county");
        let code = cell("credit_code").to_ascii_uppercase();
        let parent_code = cell("parent_credit_code").to_ascii_uppercase();
        let mut parent_id = String::new();
        if !parent_code.is_empty() {
            if let Some((_, id)) = codes.get(&parent_code) {
                parent_id = id.to_string();
            } else {
                match store::institution_by_credit_code(&mut **tx, &parent_code).await.map_err(Error::from)? {
                    Some(parent) => parent_id = parent.id.to_string(),
                    None => cs.bad("parent_credit_code", "names no institution registered or on an earlier row"),
                }
            }
        }
        if !code.is_empty() {
            if let Some((first, _)) = codes.get(&code) {
                cs.bad("credit_code", format!("the same credit code as row {first}"));
            } else if store::institution_by_credit_code(&mut **tx, &code).await.map_err(Error::from)?.is_some() {
                cs.bad("credit_code", "an institution with this credit code is already registered");
            }
        }
        let request = pb::CreateInstitutionRequest {
            request_id: String::new(),
            r#type: kind,
            name: cell("name").to_owned(),
            credit_code: code.clone(),
            parent_id: if parent_code.is_empty() { String::new() } else { parent_id.clone() },
            county,
            address: cell("address").to_owned(),
            head: cell("head").to_owned(),
        };
        let new = match convert::new_institution(request) {
            Ok(new) => {
                if let Err(status) = c.caller.require_bureau(new.county) {
                    cs.bad("county", status.message());
                }
                Some(new)
            }
            Err(status) => {
                // A sub-unit whose parent was not found is already reported.
                for (column, message) in row_errors(status, institution_column)? {
                    if !(column == "parent_credit_code" && parent_id.is_empty() && !parent_code.is_empty()) {
                        cs.bad(&column, message);
                    }
                }
                None
            }
        };
        match new {
            Some(new) if cs.problems.is_empty() => {
                if run.storing {
                    match institutions::create(tx, c.db, c.clock, c.caller, c.command, new).await {
                        Ok(stored) => {
                            run.stored += 1;
                            if let LegalStanding::LegalEntity(_) = stored.standing {
                                codes.insert(code.clone(), (number, stored.id));
                            }
                        }
                        Err(err) => {
                            for (column, message) in row_errors(err.into(), institution_column)? {
                                run.row_error(number, &column, message);
                            }
                            run.stop_storing(tx).await?;
                        }
                    }
                } else if !code.is_empty() {
                    codes.insert(code.clone(), (number, InstitutionId::generate()));
                }
            }
            _ => {
                if !code.is_empty() && !codes.contains_key(&code) {
                    // Later rows naming it as parent are not reported again.
                    codes.insert(code.clone(), (number, InstitutionId::generate()));
                }
                for (column, message) in cs.problems {
                    run.row_error(number, &column, message);
                }
                run.stop_storing(tx).await?;
            }
        }
        if (i + 1) % PROGRESS_EVERY == 0 && i + 1 < total {
            progress(progress_of(&run, i + 1, total));
        }
    }
    progress(progress_of(&run, total, total));
    run.finish(tx, import_id(), total).await
}

/// The export file of the institutions ExportInstitutions' filters match.
pub async fn export_institutions(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    req: &pb::ExportInstitutionsRequest,
) -> Result<(FileFormat, Vec<u8>), Status> {
    let format = sheets::table_format(req.format, "format")?;
    let listing = pb::ListInstitutionsRequest {
        page: None,
        county: req.county,
        r#type: req.r#type,
        name_contains: String::new(),
    };
    let (filter, _) = convert::institution_listing(&listing)?;
    let status = match pb::InstitutionStatus::try_from(req.status) {
        Ok(pb::InstitutionStatus::Unspecified) => None,
        Ok(s) => Some(s as i32),
        Err(_) => return Err(supervision_kit::error::invalid_field("status", "is not an institution status")),
    };
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = Page { size: 500, after: after.clone() };
        let (items, next) = institutions::list(db, &filter, &page).await?;
        all.extend(items);
        match next {
            Some(token) => after = Some(token),
            None => break,
        }
    }
    let codes: HashMap<String, String> = all
        .iter()
        .filter_map(|i| match &i.standing {
            LegalStanding::LegalEntity(code) => Some((i.id.to_string(), code.to_string())),
            LegalStanding::SubUnitOf(_) => None,
        })
        .collect();
    let mut rows = Vec::new();
    for institution in all {
        let p = convert::institution_to_proto(institution);
        if status.is_some_and(|s| s != p.status) {
            continue;
        }
        let parent_code = if p.parent_id.is_empty() {
            String::new()
        } else if let Some(code) = codes.get(&p.parent_id) {
            code.clone()
        } else {
            let id = convert::institution_id(&p.parent_id, "parent_id")?;
            match store::get_institution(db.pool(), &id).await.map_err(Error::from)?.map(|i| i.standing) {
                Some(LegalStanding::LegalEntity(code)) => code.to_string(),
                _ => String::new(),
            }
        };
        rows.push(vec![
            p.id.clone(),
            name_without(
                pb::InstitutionStatus::try_from(p.status).unwrap_or_default().as_str_name(),
                "INSTITUTION_STATUS_",
            )
            .to_owned(),
            name_without(
                pb::InstitutionType::try_from(p.r#type).unwrap_or_default().as_str_name(),
                "INSTITUTION_TYPE_",
            )
            .to_owned(),
            p.name,
            p.credit_code,
            parent_code,
            Bureau::from_proto(p.county).map(|b| b.division_code().to_owned()).unwrap_or_default(),
            p.address,
            p.head,
        ]);
    }
    let header: Vec<&str> = INSTITUTION_EXPORT_ONLY.iter().chain(INSTITUTION_COLUMNS).copied().collect();
    let file = sheets::write(format, &header, &rows)?;
    audit_export(
        db,
        clock,
        caller,
        "ExportInstitutions",
        "institution_export",
        &rows.len(),
        serde_json::json!({
            "county": req.county, "type": req.r#type, "status": req.status, "format": req.format,
        }),
    )
    .await?;
    Ok((format, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_name_the_file_columns() {
        assert_eq!(expert_column("profile.identity.number"), "id_number");
        assert_eq!(expert_column("profile.identity.type"), "id_type");
        assert_eq!(expert_column("profile.categories[1].evidence"), "category_evidence");
        assert_eq!(expert_column("profile.categories[0].note"), "category_note");
        assert_eq!(expert_column("profile.categories"), "categories");
        assert_eq!(expert_column("profile.specialties[2].code"), "specialties");
        assert_eq!(expert_column("profile.employer.organisation.credit_code"), "employer_credit_code");
        assert_eq!(expert_column("profile.contact.mobile"), "mobile");
        assert_eq!(expert_column("profile.bank_account.account_number"), "bank_account");
        assert_eq!(institution_column("parent_id"), "parent_credit_code");
        assert_eq!(institution_column("credit_code"), "credit_code");
    }

    #[test]
    fn past_outcomes_are_years_with_their_classification() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let mut c = Cells::default();
        let got = acceptances(&mut c, "2024:non-accepting；2023:ACCEPTING", true, today);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(got, [(2023, 1), (2024, 2)]);
        for (text, has_term, problem) in [
            ("2023:ACCEPTING;2023:NEUTRAL", true, "year 2023 is given twice"),
            ("2031:NEUTRAL", true, "`2031` is not a past or current year"),
            ("2022", true, "`2022` is not YEAR:CLASSIFICATION (e.g. 2023:ACCEPTING)"),
            ("2022:ACCEPTING", false, "past dispatch outcomes need the expert's term"),
        ] {
            let mut c = Cells::default();
            acceptances(&mut c, text, has_term, today);
            assert_eq!(c.problems.len(), 1, "{text}");
            assert!(c.problems[0].1.starts_with(problem), "{text}: {:?}", c.problems);
        }
    }

    #[test]
    fn counties_are_read_by_code_name_or_chinese_name() {
        let mut c = Cells::default();
        let xinhui = Bureau::from_division_code("440705").unwrap().to_proto() as i32;
        assert_eq!(c.county("440705", "county"), xinhui);
        assert_eq!(c.county("xinhui", "county"), xinhui);
        assert_eq!(c.county("新会区", "county"), xinhui);
        assert!(c.problems.is_empty());
        assert_eq!(c.county("广州", "county"), 0);
        assert_eq!(c.problems.len(), 1);
    }

    #[test]
    fn registry_certificate_numbers_are_recognised() {
        assert_eq!(appointments::certificate_sequence("JMSE-2022-00017"), Some((2022, 17)));
        assert_eq!(appointments::certificate_sequence("江门监督2022第17号"), None);
    }
}
