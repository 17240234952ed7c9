//! The registry's SQL: one function per statement, portable across SQLite and PostgreSQL.

/// The columns `appointments::appointment_from_row` reads, as a literal so queries stay static
/// strings (also in `experts`, which attaches each expert's last term).
macro_rules! appointment_columns {
    () => {
        "id, expert_id, term_number, kind, decision_date, term_start, term_end, certificate_number, \
         certificate_status, application_id, renewal_id, previous_appointment_id, end_reason, ended_date, \
         edition_number, created_at"
    };
}

pub mod appointments;
pub mod experts;
pub mod relations;

use sqlx::{AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Bureau, Page,
    storage::{format_instant, parse_instant},
};

use crate::domain::{Institution, InstitutionFilter, InstitutionId, InstitutionKind, InstitutionStatus, LegalStanding};

/// A row that does not decode into the domain: the database holds something the code never
/// writes.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {table} row {id}: {problem}")]
pub struct CorruptRow {
    pub table: &'static str,
    pub id: String,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    /// A stored personal value does not decrypt: the key is not the one it was written with.
    #[error(transparent)]
    Personal(#[from] supervision_kit::personal::PersonalDataError),
}

/// The columns `institution_from_row` reads, as a literal so queries stay static strings.
macro_rules! institution_columns {
    () => {
        "id, kind, name, credit_code, parent_id, county, address, head, status, created_at, updated_at"
    };
}

pub async fn insert_institution(tx: impl AnyExecutor<'_>, institution: &Institution) -> Result<(), sqlx::Error> {
    let (credit_code, parent_id) = match &institution.standing {
        LegalStanding::LegalEntity(code) => (Some(code.as_str()), None),
        LegalStanding::SubUnitOf(parent) => (None, Some(parent.as_str())),
    };
    sqlx::query(
        "INSERT INTO institutions (id, kind, name, credit_code, parent_id, county, address, head, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(institution.id.as_str())
    .bind(institution.kind.code())
    .bind(&institution.name)
    .bind(credit_code)
    .bind(parent_id)
    .bind(institution.county.division_code())
    .bind(&institution.address)
    .bind(&institution.head)
    .bind(institution.status.code())
    .bind(format_instant(institution.created_at))
    .bind(format_instant(institution.updated_at))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn get_institution(db: impl AnyExecutor<'_>, id: &InstitutionId) -> Result<Option<Institution>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", institution_columns!(), " FROM institutions WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.map(|r| institution_from_row(&r)).transpose().map_err(Into::into)
}

/// Writes an institution's changed fields.
pub async fn update_institution(tx: impl AnyExecutor<'_>, i: &Institution) -> Result<(), sqlx::Error> {
    let (credit_code, parent_id) = match &i.standing {
        LegalStanding::LegalEntity(code) => (Some(code.to_string()), None),
        LegalStanding::SubUnitOf(parent) => (None, Some(parent.to_string())),
    };
    sqlx::query(
        "UPDATE institutions SET kind = $2, name = $3, credit_code = $4, parent_id = $5, county = $6, address = $7, \
         head = $8, status = $9, updated_at = $10 WHERE id = $1",
    )
    .bind(i.id.as_str())
    .bind(i.kind.code())
    .bind(&i.name)
    .bind(credit_code)
    .bind(parent_id)
    .bind(i.county.division_code())
    .bind(&i.address)
    .bind(&i.head)
    .bind(i.status.code())
    .bind(format_instant(i.updated_at))
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether any institution names `id` as its parent.
pub async fn has_sub_units(db: impl AnyExecutor<'_>, id: &InstitutionId) -> Result<bool, StoreError> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM institutions WHERE parent_id = $1 LIMIT 1")
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// The institution registered under a credit code, if any.
pub async fn institution_by_credit_code(
    db: impl AnyExecutor<'_>,
    code: &str,
) -> Result<Option<Institution>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", institution_columns!(), " FROM institutions WHERE credit_code = $1"))
        .bind(code)
        .fetch_optional(db)
        .await?;
    row.map(|r| institution_from_row(&r)).transpose().map_err(Into::into)
}

pub async fn list_institutions(
    db: impl AnyExecutor<'_>,
    filter: &InstitutionFilter,
    page: &Page,
) -> Result<Vec<Institution>, StoreError> {
    let name_pattern = filter.name_contains.as_deref().map(like_pattern);
    let rows = sqlx::query(concat!(
        "SELECT ",
        institution_columns!(),
        " FROM institutions \
         WHERE ($1 = '' OR id > $1) \
           AND ($2 = '' OR county = $2) \
           AND ($3 = '' OR kind = $3) \
           AND ($4 = '' OR name LIKE $4 ESCAPE '\\') \
         ORDER BY id LIMIT $5"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.county.map(Bureau::division_code).unwrap_or_default())
    .bind(filter.kind.map(InstitutionKind::code).unwrap_or_default())
    .bind(name_pattern.unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| institution_from_row(r).map_err(Into::into)).collect()
}

/// `%text%` with LIKE's wildcards in `text` taken literally.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn institution_from_row(row: &AnyRow) -> Result<Institution, CorruptRow> {
    let id: String = row.try_get("id").map_err(|e| corrupt("?".into(), e))?;
    let bad = |problem: String| CorruptRow { table: "institutions", id: id.clone(), problem };
    let get =
        |col: &str| -> Result<String, CorruptRow> { row.try_get::<String, _>(col).map_err(|e| bad(e.to_string())) };
    let credit_code: Option<String> = row.try_get("credit_code").map_err(|e| bad(e.to_string()))?;
    let parent_id: Option<String> = row.try_get("parent_id").map_err(|e| bad(e.to_string()))?;
    let standing = match (credit_code, parent_id) {
        (Some(code), None) => LegalStanding::LegalEntity(
            crate::domain::CreditCode::parse(&code).map_err(|e| bad(format!("credit_code: {e}")))?,
        ),
        (None, Some(parent)) => {
            LegalStanding::SubUnitOf(InstitutionId::parse(&parent).ok_or_else(|| bad("parent_id".into()))?)
        }
        _ => return Err(bad("needs exactly one of credit_code and parent_id".into())),
    };
    let county = get("county")?;
    let kind = get("kind")?;
    let status = get("status")?;
    Ok(Institution {
        id: InstitutionId::parse(&id).ok_or_else(|| bad("id".into()))?,
        kind: InstitutionKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        name: get("name")?,
        standing,
        county: Bureau::from_division_code(&county).ok_or_else(|| bad(format!("county {county}")))?,
        address: get("address")?,
        head: get("head")?,
        status: InstitutionStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        created_at: parse_instant(&get("created_at")?).map_err(|e| bad(format!("created_at: {e}")))?,
        updated_at: parse_instant(&get("updated_at")?).map_err(|e| bad(format!("updated_at: {e}")))?,
    })
}

fn corrupt(id: String, err: sqlx::Error) -> CorruptRow {
    CorruptRow { table: "institutions", id, problem: err.to_string() }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(like_pattern("江门"), "%江门%");
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
