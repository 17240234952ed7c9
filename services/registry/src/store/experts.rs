//! Experts' SQL. Personal values (identity numbers, mobile, e-mail, postal address, bank account)
//! are written only as ciphertext of the deployment key, documents also as their blind index;
//! nothing here writes or reads a plain number.
//!
//! Functions take a connection (`&mut **tx` inside a transaction) because reading or writing an
//! expert spans the row and its child tables.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_kit::{
    Bureau, Page, SpecialtyCode,
    auth::Actor,
    credit_code::CreditCode,
    identity::{DocumentType, IdentityDocument},
    personal::PersonalDataKey,
    storage::{format_instant, parse_instant},
    vocab::OnBehalf,
};

use super::{CorruptRow, StoreError, like_pattern};
use crate::domain::{
    BankAccount, Category, CategoryHolding, ChangeId, CivilServantEntry, CivilServantStatus, Condition,
    ConditionRecord, Contact, Employer, Expert, ExpertChange, ExpertFilter, ExpertId, ExpertKind, ExpertStatus,
    FieldChange, Gender, InstitutionId, Locality, Organisation, Profile, SkillLevel, Specialty,
};

/// The columns `head_from_row` reads, as a literal so queries stay static strings.
macro_rules! expert_columns {
    () => {
        "id, kind, name, gender, birth_date, county, outside_jiangmen, mobile_enc, email_enc, address_enc, \
         bank_holder_name, bank_name, bank_branch, bank_account_enc, employer_name, employer_credit_code, \
         employer_institution_id, employer_post, employer_since, employer_key, represented_name, \
         represented_credit_code, represented_institution_id, professional_title, status, trained, \
         last_confirmed_year, application_id, current_term_end, revision, created_at, updated_at"
    };
}

/// The columns `civil_servant_from_row` reads.
macro_rules! civil_servant_columns {
    () => {
        "expert_id, seq, valid_from, status, evidence_json, recorded_by_json, on_behalf_json, recorded_at"
    };
}

/// `SELECT <columns> FROM <table>` for the experts whose ids `$1` holds as a JSON array, in
/// expert order then `<order>`: one static statement per backend, so a page of any size costs one
/// query per child table, however sparse its experts are among all ids.
macro_rules! children_query {
    ($conn:expr, $columns:literal, $table:literal, $order:literal) => {
        if $conn.backend_name() == "PostgreSQL" {
            sqlx::query(concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                // `= ANY(ARRAY(..))` lets the planner use the primary key; `IN (SELECT ..)` over the
                // jsonb elements scanned the whole child table (docs/performance.md).
                " WHERE expert_id = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST($1 AS jsonb)))) ORDER BY expert_id, ",
                $order
            ))
        } else {
            sqlx::query(concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                " WHERE expert_id IN (SELECT value FROM json_each($1)) ORDER BY expert_id, ",
                $order
            ))
        }
    };
}

/// PostgreSQL's child rows of an expert `e` as one JSON object: each child table as an array of
/// its rows in stored order, and the last term as one row (`row_to_json` keeps the column names,
/// TEXT as strings and INTEGER as numbers, so `JsonRow` hands the same values to the same parsers).
/// The same text as the `expert_children(e.id)` function of migration `0009_expert_reads.sql`,
/// which the triggers keeping `expert_reads` use (the testkit's `assert_expert_reads_current`
/// checks that the two agree); written inline so that a read's statement is all in the code.
macro_rules! children_json_expr {
    () => {
        "CAST(json_build_object(\
         'documents', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_documents c \
            WHERE c.expert_id = e.id), '[]'), \
         'categories', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_categories c \
            WHERE c.expert_id = e.id), '[]'), \
         'conditions', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_conditions c \
            WHERE c.expert_id = e.id), '[]'), \
         'specialties', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_specialties c \
            WHERE c.expert_id = e.id), '[]'), \
         'civil_servant', COALESCE((SELECT json_agg(c ORDER BY c.seq) FROM expert_civil_servant_entries c \
            WHERE c.expert_id = e.id), '[]'), \
         'appointment', (SELECT row_to_json(a) FROM appointments a \
            WHERE a.expert_id = e.id ORDER BY a.term_number DESC LIMIT 1)) AS TEXT)"
    };
}

/// `children_json_expr!()` as SQL text, for tests that compare it with `expert_children`.
pub const CHILDREN_JSON_SQL: &str = children_json_expr!();

/// The experts `e` with their stored child rows (`expert_reads`, which triggers rewrite at the
/// commit of every change to them), and the column `children_json` read from there, or computed
/// now for an expert that has none stored. Only for a transaction that has not changed experts:
/// its own changes reach `expert_reads` when it commits.
macro_rules! stored_children {
    () => {
        concat!(
            ", COALESCE(r.children, ",
            children_json_expr!(),
            ") AS children_json FROM experts e LEFT JOIN expert_reads r ON r.expert_id = e.id "
        )
    };
}

/// The blind index of every document of `profile`, primary first.
pub fn blind_indexes(key: &PersonalDataKey, profile: &Profile) -> Vec<String> {
    profile.documents().map(|d| key.blind_index(&d.index_input())).collect()
}

/// The expert holding a document with this blind index, if any.
pub async fn document_holder(conn: &mut AnyConnection, blind_index: &str) -> Result<Option<ExpertId>, StoreError> {
    let id: Option<String> = sqlx::query_scalar("SELECT expert_id FROM expert_documents WHERE blind_index = $1")
        .bind(blind_index)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(id.and_then(|id| ExpertId::parse(&id)))
}

/// An expert's stored revision, if there is such an expert.
pub async fn expert_revision(conn: &mut AnyConnection, id: &ExpertId) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT revision FROM experts WHERE id = $1").bind(id.as_str()).fetch_optional(&mut *conn).await
}

fn enc(key: &PersonalDataKey, plain: &str) -> String {
    if plain.is_empty() { String::new() } else { key.encrypt(plain) }
}

pub(crate) fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn org_parts(o: Option<&Organisation>) -> (String, String, String) {
    o.map(|o| {
        (
            o.name.clone(),
            o.credit_code.as_ref().map(ToString::to_string).unwrap_or_default(),
            o.institution_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        )
    })
    .unwrap_or_default()
}

/// Writes a new expert: the row, its documents (ciphertext and blind index), categories,
/// conditions, specialties and civil-servant entries. A document another expert holds fails on
/// `expert_documents_blind_index_key`.
pub async fn insert_expert(conn: &mut AnyConnection, key: &PersonalDataKey, e: &Expert) -> Result<(), sqlx::Error> {
    write_row(conn, key, e, None).await?;
    write_children(conn, key, e).await?;
    for entry in &e.civil_servant {
        insert_civil_servant_entry(conn, &e.id, entry).await?;
    }
    Ok(())
}

/// Rewrites an expert whose stored revision is `old_revision`; `false` when it is not (someone
/// else changed it in between), and then nothing is written.
pub async fn update_expert(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    e: &Expert,
    old_revision: i64,
) -> Result<bool, sqlx::Error> {
    if !write_row(conn, key, e, Some(old_revision)).await? {
        return Ok(false);
    }
    for table in [
        "DELETE FROM expert_documents WHERE expert_id = $1",
        "DELETE FROM expert_categories WHERE expert_id = $1",
        "DELETE FROM expert_conditions WHERE expert_id = $1",
        "DELETE FROM expert_specialties WHERE expert_id = $1",
    ] {
        sqlx::query(table).bind(e.id.as_str()).execute(&mut *conn).await?;
    }
    write_children(conn, key, e).await?;
    Ok(true)
}

/// Inserts the row (`old_revision` `None`) or updates it where its revision is `old_revision`.
async fn write_row(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    e: &Expert,
    old_revision: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let p = &e.profile;
    let (county, outside) = match &p.locality {
        Locality::County(b) => (b.division_code().to_owned(), String::new()),
        Locality::Outside(place) => (String::new(), place.clone()),
    };
    let account = p.bank_account.as_ref();
    let employer = p.employer.as_ref();
    let (employer_name, employer_code, employer_institution) = org_parts(employer.map(|e| &e.organisation));
    let (represented_name, represented_code, represented_institution) = org_parts(p.represented_unit.as_ref());
    let query = match old_revision {
        None => sqlx::query(concat!(
            "INSERT INTO experts (",
            expert_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"
        )),
        Some(_) => sqlx::query(
            "UPDATE experts SET kind = $2, name = $3, gender = $4, birth_date = $5, county = $6, \
             outside_jiangmen = $7, mobile_enc = $8, email_enc = $9, address_enc = $10, bank_holder_name = $11, \
             bank_name = $12, bank_branch = $13, bank_account_enc = $14, employer_name = $15, \
             employer_credit_code = $16, employer_institution_id = $17, employer_post = $18, employer_since = $19, \
             employer_key = $20, represented_name = $21, represented_credit_code = $22, \
             represented_institution_id = $23, professional_title = $24, status = $25, trained = $26, \
             last_confirmed_year = $27, application_id = $28, current_term_end = $29, revision = $30, \
             created_at = $31, updated_at = $32 WHERE id = $1 AND revision = $33",
        ),
    };
    let mut query = query
        .bind(e.id.as_str())
        .bind(p.kind.code())
        .bind(&p.name)
        .bind(p.gender.map(Gender::code).unwrap_or_default())
        .bind(date_text(p.birth_date))
        .bind(county)
        .bind(outside)
        .bind(enc(key, &p.contact.mobile))
        .bind(enc(key, &p.contact.email))
        .bind(enc(key, &p.contact.address))
        .bind(account.map(|a| a.holder_name.clone()).unwrap_or_default())
        .bind(account.map(|a| a.bank_name.clone()).unwrap_or_default())
        .bind(account.map(|a| a.branch_name.clone()).unwrap_or_default())
        .bind(account.map(|a| enc(key, &a.account_number)).unwrap_or_default())
        .bind(employer_name)
        .bind(employer_code)
        .bind(employer_institution)
        .bind(employer.map(|e| e.post.clone()).unwrap_or_default())
        .bind(date_text(employer.and_then(|e| e.since)))
        .bind(employer.map(Employer::key).unwrap_or_default())
        .bind(represented_name)
        .bind(represented_code)
        .bind(represented_institution)
        .bind(&p.professional_title)
        .bind(e.status.code())
        .bind(i32::from(e.trained))
        .bind(e.last_confirmed_year)
        .bind(&e.application_id)
        .bind(date_text(e.current_term_end))
        .bind(e.revision)
        .bind(format_instant(e.created_at))
        .bind(format_instant(e.updated_at));
    if let Some(old) = old_revision {
        query = query.bind(old);
    }
    let done = query.execute(&mut *conn).await?;
    Ok(done.rows_affected() == 1)
}

async fn write_children(conn: &mut AnyConnection, key: &PersonalDataKey, e: &Expert) -> Result<(), sqlx::Error> {
    let id = e.id.as_str();
    for (ordinal, doc) in (0i32..).zip(e.profile.documents()) {
        sqlx::query(
            "INSERT INTO expert_documents (expert_id, ordinal, kind, issuing_country, number_enc, blind_index) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(ordinal)
        .bind(doc.kind.code())
        .bind(&doc.issuing_country)
        .bind(key.encrypt(doc.number()))
        .bind(key.blind_index(&doc.index_input()))
        .execute(&mut *conn)
        .await?;
    }
    for (ordinal, h) in (0i32..).zip(&e.profile.categories) {
        sqlx::query(
            "INSERT INTO expert_categories (expert_id, ordinal, category, evidence_json, valid_until, verified, \
             verified_by_json, verified_date, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(ordinal)
        .bind(h.category.code())
        .bind(json(&h.evidence))
        .bind(date_text(h.valid_until))
        .bind(i32::from(h.verified))
        .bind(actor_json(h.verified_by.as_ref()))
        .bind(date_text(h.verified_date))
        .bind(&h.note)
        .execute(&mut *conn)
        .await?;
    }
    for (ordinal, c) in (0i32..).zip(&e.profile.conditions) {
        sqlx::query(
            "INSERT INTO expert_conditions (expert_id, ordinal, condition_code, evidence_json, checked_date, \
             checked_by_json, met, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(ordinal)
        .bind(c.condition.code())
        .bind(json(&c.evidence))
        .bind(date_text(c.checked_date))
        .bind(actor_json(c.checked_by.as_ref()))
        .bind(i32::from(c.met))
        .bind(&c.note)
        .execute(&mut *conn)
        .await?;
    }
    for (ordinal, s) in (0i32..).zip(&e.profile.specialties) {
        sqlx::query(
            "INSERT INTO expert_specialties (expert_id, ordinal, code, level, note) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(ordinal)
        .bind(s.code.as_str())
        .bind(s.level.map(SkillLevel::code).unwrap_or_default())
        .bind(&s.note)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Appends a civil-servant entry (its `seq` chosen by the caller under the expert's row lock).
pub async fn insert_civil_servant_entry(
    conn: &mut AnyConnection,
    expert: &ExpertId,
    entry: &CivilServantEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO expert_civil_servant_entries (expert_id, seq, valid_from, status, evidence_json, \
         recorded_by_json, on_behalf_json, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(expert.as_str())
    .bind(entry.seq)
    .bind(date_text(entry.valid_from))
    .bind(entry.status.code())
    .bind(json(&entry.evidence))
    .bind(actor_json(Some(&entry.recorded_by)))
    .bind(on_behalf_json(entry.on_behalf.as_ref()))
    .bind(format_instant(entry.recorded_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves an expert to the next revision without touching its data (a confirmation, a
/// civil-servant entry), taking the row's write lock on PostgreSQL. `false` if there is no such
/// expert.
pub async fn touch_expert(
    conn: &mut AnyConnection,
    id: &ExpertId,
    last_confirmed_year: Option<i32>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE experts SET revision = revision + 1, updated_at = $2, \
         last_confirmed_year = CASE WHEN $3 > last_confirmed_year THEN $3 ELSE last_confirmed_year END \
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(format_instant(at))
    .bind(last_confirmed_year.unwrap_or(0))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an expert as having attended policy training (article 4), e.g. as an import says.
pub async fn set_trained(
    conn: &mut AnyConnection,
    id: &ExpertId,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE experts SET trained = 1, revision = revision + 1, updated_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(format_instant(at))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records (or, for the same year again, replaces) a yearly self-confirmation (D21).
pub async fn upsert_confirmation(
    conn: &mut AnyConnection,
    expert: &ExpertId,
    year: i32,
    note: &str,
    on_behalf: Option<&OnBehalf>,
    actor: &Actor,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO expert_confirmations (expert_id, year, note, on_behalf_json, actor_json, confirmed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (expert_id, year) DO UPDATE SET note = excluded.note, \
         on_behalf_json = excluded.on_behalf_json, actor_json = excluded.actor_json, \
         confirmed_at = excluded.confirmed_at",
    )
    .bind(expert.as_str())
    .bind(year)
    .bind(note)
    .bind(on_behalf_json(on_behalf))
    .bind(actor_json(Some(actor)))
    .bind(format_instant(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn insert_change(conn: &mut AnyConnection, change: &ExpertChange) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO expert_changes (id, expert_id, at, actor_json, reason, on_behalf_json, changes_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(change.id.as_str())
    .bind(change.expert_id.as_str())
    .bind(format_instant(change.at))
    .bind(actor_json(Some(&change.actor)))
    .bind(&change.reason)
    .bind(on_behalf_json(change.on_behalf.as_ref()))
    .bind(json(&change.changes))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One page of an expert's changes, newest first (change ids are UUIDv7).
pub async fn list_changes(
    conn: &mut AnyConnection,
    expert: &ExpertId,
    page: &Page,
) -> Result<Vec<ExpertChange>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, expert_id, at, actor_json, reason, on_behalf_json, changes_json FROM expert_changes \
         WHERE expert_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(expert.as_str())
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(change_from_row).collect()
}

/// One expert with its child rows, as the connection's transaction sees them (its own changes
/// included). On PostgreSQL one statement (`GET_EXPERT_ONE_STATEMENT`, the child rows aggregated
/// now), so it needs no snapshot transaction around it; on SQLite the assembled read, inside one.
pub async fn get_expert(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    id: &ExpertId,
) -> Result<Option<Expert>, StoreError> {
    if conn.backend_name() == "PostgreSQL" {
        let row = sqlx::query(GET_EXPERT_ONE_STATEMENT).bind(id.as_str()).fetch_optional(&mut *conn).await?;
        return row.map(|row| expert_from_one_statement(&row, key)).transpose();
    }
    get_expert_assembled(conn, key, id).await
}

/// `get_expert` for a connection that has changed nothing in its transaction (GetExpert's read):
/// on PostgreSQL the child rows as `expert_reads` holds them (`stored_children!`), one primary-key
/// read instead of six aggregates, with the expert's `ReadStamp` from the same snapshot; on SQLite
/// the assembled read, inside one snapshot, and no stamp.
pub async fn get_committed_expert(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    id: &ExpertId,
) -> Result<Option<(Expert, Option<ReadStamp>)>, StoreError> {
    if conn.backend_name() == "PostgreSQL" {
        let row = sqlx::query(GET_COMMITTED_EXPERT_STATEMENT).bind(id.as_str()).fetch_optional(&mut *conn).await?;
        return row.map(|row| Ok((expert_from_one_statement(&row, key)?, Some(stamp_from(&row)?)))).transpose();
    }
    Ok(get_expert_assembled(conn, key, id).await?.map(|expert| (expert, None)))
}

/// What identifies the version of an expert that `get_committed_expert` reads on PostgreSQL: the
/// stamps that triggers draw from one sequence whenever the experts row, or the child rows that
/// `expert_reads` keeps, are written (migration `0011_read_stamps.sql`). Equal stamps, the same
/// expert; a sequence never repeats a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStamp {
    pub row: i64,
    /// `None` while the expert has no `expert_reads` row (its child rows are then read as they
    /// are; the first write of one creates the row).
    pub children: Option<i64>,
}

fn stamp_from(row: &AnyRow) -> Result<ReadStamp, sqlx::Error> {
    Ok(ReadStamp { row: row.try_get("row_stamp")?, children: row.try_get("children_stamp")? })
}

/// An expert's current `ReadStamp` on PostgreSQL (two primary-key lookups, no child rows), or
/// `None` when there is no such expert.
pub async fn read_stamp(conn: &mut AnyConnection, id: &ExpertId) -> Result<Option<ReadStamp>, sqlx::Error> {
    Ok(read_stamps(conn, &[id]).await?.pop().map(|(_, stamp)| stamp))
}

/// The current `ReadStamp` of each of `ids` that exists, with its id, in one statement (the
/// batched form of [`read_stamp`]).
pub async fn read_stamps(conn: &mut AnyConnection, ids: &[&ExpertId]) -> Result<Vec<(String, ReadStamp)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    // Only placeholders are spliced in; every id is bound.
    let sql = format!(
        "SELECT e.id, e.row_stamp, r.children_stamp FROM experts e LEFT JOIN expert_reads r ON r.expert_id = e.id \
         WHERE e.id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(|row| Ok((row.try_get("id")?, stamp_from(row)?))).collect()
}

/// `get_expert` as the expert's row then one query per child table (SQLite's path; on PostgreSQL
/// the comparison `get_expert` is checked against). Run it inside one snapshot.
pub async fn get_expert_assembled(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    id: &ExpertId,
) -> Result<Option<Expert>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", expert_columns!(), " FROM experts WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut experts = assemble(conn, key, vec![row]).await?;
    Ok(experts.pop())
}

/// `list_experts`' filter and order, after the selected columns and `FROM experts e`: `$1`..`$15`
/// as it binds them.
macro_rules! expert_listing {
    () => {
        " WHERE ($1 = '' OR e.id > $1) \
           AND ($2 = '' OR e.status = $2) \
           AND ($3 = '' OR EXISTS (SELECT 1 FROM expert_categories c WHERE c.expert_id = e.id AND c.category = $3)) \
           AND ($4 = '' OR EXISTS (SELECT 1 FROM expert_specialties s WHERE s.expert_id = e.id \
                AND (s.code = $4 OR s.code LIKE $5))) \
           AND ($6 = '' OR e.county = $6) \
           AND ($7 = 0 OR e.outside_jiangmen <> '') \
           AND ($8 = '' OR e.employer_credit_code = $8 OR e.employer_name LIKE $9 ESCAPE '\\') \
           AND ($10 = '' OR (e.current_term_end <> '' AND e.current_term_end >= $10)) \
           AND ($11 = '' OR (e.current_term_end <> '' AND e.current_term_end <= $11)) \
           AND ($12 = '' OR e.name LIKE $12 ESCAPE '\\') \
           AND ($13 = '' OR EXISTS (SELECT 1 FROM expert_documents d WHERE d.expert_id = e.id AND d.blind_index = $13)) \
           AND ($14 = '' OR e.kind = $14) \
         ORDER BY e.id LIMIT $15"
    };
}

/// One page of experts matching `filter`, in id order: on PostgreSQL one statement reading the
/// stored child rows (`stored_children!`; not inside a transaction that changed experts), on
/// SQLite the page's rows then one query per child table.
pub async fn list_experts(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    filter: &ExpertFilter,
    page: &Page,
) -> Result<Vec<Expert>, StoreError> {
    let specialty = filter.specialty_prefix.clone().unwrap_or_default();
    let specialty_under = if specialty.is_empty() { String::new() } else { format!("{specialty}-%") };
    let employer = filter.employer.clone().unwrap_or_default();
    let employer_like = if employer.is_empty() { String::new() } else { like_pattern(&employer) };
    let postgres = conn.backend_name() == "PostgreSQL";
    let statement = if postgres {
        concat!("SELECT ", expert_columns!(), stored_children!(), expert_listing!())
    } else {
        concat!("SELECT ", expert_columns!(), " FROM experts e", expert_listing!())
    };
    let rows = sqlx::query(statement)
        .bind(page.after.as_deref().unwrap_or_default())
        .bind(filter.status.map(ExpertStatus::code).unwrap_or_default())
        .bind(filter.category.map(Category::code).unwrap_or_default())
        .bind(specialty)
        .bind(specialty_under)
        .bind(filter.county.map(Bureau::division_code).unwrap_or_default())
        .bind(i32::from(filter.outside_jiangmen))
        .bind(employer)
        .bind(employer_like)
        .bind(date_text(filter.term_end_from))
        .bind(date_text(filter.term_end_to))
        .bind(filter.name_contains.as_deref().map(like_pattern).unwrap_or_default())
        .bind(filter.identity_index.clone().unwrap_or_default())
        .bind(filter.kind.map(ExpertKind::code).unwrap_or_default())
        .bind(i64::from(page.size))
        .fetch_all(&mut *conn)
        .await?;
    if postgres {
        return rows.iter().map(|row| expert_from_one_statement(row, key)).collect();
    }
    assemble(conn, key, rows).await
}

/// The civil-servant entries of one expert, in recording order.
pub async fn civil_servant_entries(
    conn: &mut AnyConnection,
    expert: &ExpertId,
) -> Result<Vec<CivilServantEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        civil_servant_columns!(),
        " FROM expert_civil_servant_entries WHERE expert_id = $1 ORDER BY seq"
    ))
    .bind(expert.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| civil_servant_from_row(r).map(|(_, e)| e)).collect()
}

/// The rows' experts with their child rows (one query per child table, whatever the page size).
async fn assemble(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    rows: Vec<AnyRow>,
) -> Result<Vec<Expert>, StoreError> {
    let heads = rows.iter().map(|r| head_from_row(r, key)).collect::<Result<Vec<_>, _>>()?;
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::Value::from(heads.iter().map(|h| h.id.to_string()).collect::<Vec<_>>()).to_string();
    let mut children: HashMap<String, Children> = HashMap::new();
    for row in children_query!(conn, "expert_id, kind, issuing_country, number_enc", "expert_documents", "ordinal")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
    {
        let (id, document) = document_from(&row, key)?;
        children.entry(id).or_default().documents.push(document);
    }
    for row in children_query!(
        conn,
        "expert_id, category, evidence_json, valid_until, verified, verified_by_json, verified_date, note",
        "expert_categories",
        "ordinal"
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let (id, holding) = category_from(&row)?;
        children.entry(id).or_default().categories.push(holding);
    }
    for row in children_query!(
        conn,
        "expert_id, condition_code, evidence_json, checked_date, checked_by_json, met, note",
        "expert_conditions",
        "ordinal"
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let (id, record) = condition_from(&row)?;
        children.entry(id).or_default().conditions.push(record);
    }
    for row in children_query!(conn, "expert_id, code, level, note", "expert_specialties", "ordinal")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
    {
        let (id, specialty) = specialty_from(&row)?;
        children.entry(id).or_default().specialties.push(specialty);
    }
    for row in children_query!(
        conn,
        "expert_id, seq, valid_from, status, evidence_json, recorded_by_json, on_behalf_json, recorded_at",
        "expert_civil_servant_entries",
        "seq"
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let (id, entry) = civil_servant_from_row(&row)?;
        children.entry(id).or_default().civil_servant.push(entry);
    }

    // Every term of the page's experts, in term order: the last one is the current (or last) term.
    for row in children_query!(
        conn,
        "id, expert_id, term_number, kind, decision_date, term_start, term_end, certificate_number, \
         certificate_status, application_id, renewal_id, previous_appointment_id, end_reason, ended_date, \
         edition_number, created_at",
        "appointments",
        "term_number"
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let appointment = super::appointments::appointment_from_row(&row)?;
        let id = appointment.expert_id.to_string();
        children.entry(id).or_default().appointment = Some(appointment);
    }

    heads
        .into_iter()
        .map(|head| {
            let found = children.remove(head.id.as_str()).unwrap_or_default();
            attach(head, found)
        })
        .collect()
}

/// PostgreSQL's `get_expert`.
const GET_EXPERT_ONE_STATEMENT: &str = concat!(
    "SELECT ",
    expert_columns!(),
    ", ",
    children_json_expr!(),
    " AS children_json FROM experts e WHERE e.id = $1"
);

/// PostgreSQL's `get_committed_expert`.
const GET_COMMITTED_EXPERT_STATEMENT: &str =
    concat!("SELECT ", expert_columns!(), ", e.row_stamp, r.children_stamp", stored_children!(), "WHERE e.id = $1");

/// `children_json_expr!()` parsed: each child table's rows as `row_to_json` writes them.
#[derive(serde::Deserialize)]
struct ChildrenJson {
    documents: Vec<JsonFields>,
    categories: Vec<JsonFields>,
    conditions: Vec<JsonFields>,
    specialties: Vec<JsonFields>,
    civil_servant: Vec<JsonFields>,
    appointment: Option<JsonFields>,
}

type JsonFields = serde_json::Map<String, serde_json::Value>;

/// An expert read with its `children_json` column.
fn expert_from_one_statement(row: &AnyRow, key: &PersonalDataKey) -> Result<Expert, StoreError> {
    let head = head_from_row(row, key)?;
    let text: String = row.try_get("children_json")?;
    let children: ChildrenJson =
        from_json(&text).map_err(|problem| CorruptRow { table: "expert_reads", id: head.id.to_string(), problem })?;
    let rows =
        |rows: Vec<JsonFields>, table: &'static str| rows.into_iter().map(move |fields| JsonRow { table, fields });
    let mut found = Children::default();
    for r in rows(children.documents, "expert_documents") {
        found.documents.push(document_from(&r, key)?.1);
    }
    for r in rows(children.categories, "expert_categories") {
        found.categories.push(category_from(&r)?.1);
    }
    for r in rows(children.conditions, "expert_conditions") {
        found.conditions.push(condition_from(&r)?.1);
    }
    for r in rows(children.specialties, "expert_specialties") {
        found.specialties.push(specialty_from(&r)?.1);
    }
    for r in rows(children.civil_servant, "expert_civil_servant_entries") {
        found.civil_servant.push(civil_servant_from_row(&r)?.1);
    }
    if let Some(fields) = children.appointment {
        found.appointment =
            Some(super::appointments::appointment_from_row(&JsonRow { table: "appointments", fields })?);
    }
    attach(head, found)
}

/// One expert's child rows, in their stored order.
#[derive(Default)]
struct Children {
    documents: Vec<IdentityDocument>,
    categories: Vec<CategoryHolding>,
    conditions: Vec<ConditionRecord>,
    specialties: Vec<Specialty>,
    civil_servant: Vec<CivilServantEntry>,
    /// The last term.
    appointment: Option<crate::domain::Appointment>,
}

/// `head` with its child rows: the first document is the identity.
fn attach(head: Expert, children: Children) -> Result<Expert, StoreError> {
    let mut docs = children.documents.into_iter();
    let identity = docs.next().ok_or_else(|| CorruptRow {
        table: "experts",
        id: head.id.to_string(),
        problem: "no identity document".into(),
    })?;
    let mut expert = head;
    let p = &mut expert.profile;
    p.identity = identity;
    p.other_identities = docs.collect();
    p.categories = children.categories;
    p.conditions = children.conditions;
    p.specialties = children.specialties;
    expert.civil_servant = children.civil_servant;
    expert.appointment = children.appointment;
    Ok(expert)
}

/// A row's values by column name: a fetched row, or one row of a child table that
/// `children_json_expr!()` holds as JSON.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn int(&self, column: &str) -> Result<i32, StoreError>;
}

impl Columns for AnyRow {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get::<String, _>(column)?)
    }

    fn int(&self, column: &str) -> Result<i32, StoreError> {
        Ok(self.try_get::<i32, _>(column)?)
    }
}

/// One element of a `json_agg` (or a `row_to_json`) of `table`'s rows.
pub(crate) struct JsonRow {
    table: &'static str,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl JsonRow {
    fn missing(&self, column: &str, wanted: &str) -> StoreError {
        let id = self.fields.get("expert_id").and_then(serde_json::Value::as_str).unwrap_or_default();
        CorruptRow { table: self.table, id: id.to_owned(), problem: format!("{column} is not {wanted}") }.into()
    }
}

impl Columns for JsonRow {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        match self.fields.get(column) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => Err(self.missing(column, "text")),
        }
    }

    fn int(&self, column: &str) -> Result<i32, StoreError> {
        self.fields
            .get(column)
            .and_then(serde_json::Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| self.missing(column, "a 32-bit integer"))
    }
}

fn document_from(row: &impl Columns, key: &PersonalDataKey) -> Result<(String, IdentityDocument), StoreError> {
    let id = row.text("expert_id")?;
    let bad = |problem: String| CorruptRow { table: "expert_documents", id: id.clone(), problem };
    let kind = row.text("kind")?;
    let kind = DocumentType::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?;
    let number = key.decrypt(&row.text("number_enc")?)?;
    let country = row.text("issuing_country")?;
    // Stored documents were valid when written; the far date only lifts the "born by today" check.
    let doc =
        IdentityDocument::parse(kind, &number, &country, NaiveDate::MAX).map_err(|e| bad(format!("document: {e}")))?;
    Ok((id, doc))
}

fn category_from(row: &impl Columns) -> Result<(String, CategoryHolding), StoreError> {
    let id = row.text("expert_id")?;
    let bad = |problem: String| CorruptRow { table: "expert_categories", id: id.clone(), problem };
    let category = row.text("category")?;
    let holding = CategoryHolding {
        category: Category::from_code(&category).ok_or_else(|| bad(format!("category {category}")))?,
        evidence: from_json(&row.text("evidence_json")?).map_err(bad)?,
        valid_until: opt_date(&row.text("valid_until")?).map_err(bad)?,
        verified: row.int("verified")? != 0,
        verified_by: opt_actor(&row.text("verified_by_json")?).map_err(bad)?,
        verified_date: opt_date(&row.text("verified_date")?).map_err(bad)?,
        note: row.text("note")?,
    };
    Ok((id, holding))
}

fn condition_from(row: &impl Columns) -> Result<(String, ConditionRecord), StoreError> {
    let id = row.text("expert_id")?;
    let bad = |problem: String| CorruptRow { table: "expert_conditions", id: id.clone(), problem };
    let condition = row.text("condition_code")?;
    let record = ConditionRecord {
        condition: Condition::from_code(&condition).ok_or_else(|| bad(format!("condition {condition}")))?,
        evidence: from_json(&row.text("evidence_json")?).map_err(bad)?,
        checked_date: opt_date(&row.text("checked_date")?).map_err(bad)?,
        checked_by: opt_actor(&row.text("checked_by_json")?).map_err(bad)?,
        met: row.int("met")? != 0,
        note: row.text("note")?,
    };
    Ok((id, record))
}

fn specialty_from(row: &impl Columns) -> Result<(String, Specialty), StoreError> {
    let id = row.text("expert_id")?;
    let bad = |problem: String| CorruptRow { table: "expert_specialties", id: id.clone(), problem };
    let code = row.text("code")?;
    let level = row.text("level")?;
    let specialty = Specialty {
        code: SpecialtyCode::parse(&code).ok_or_else(|| bad(format!("code {code}")))?,
        level: if level.is_empty() {
            None
        } else {
            Some(SkillLevel::from_code(&level).ok_or_else(|| bad(format!("level {level}")))?)
        },
        note: row.text("note")?,
    };
    Ok((id, specialty))
}

/// An expert's row before its child rows are attached: the profile's identity is a placeholder
/// and its lists are empty.
fn head_from_row(row: &AnyRow, key: &PersonalDataKey) -> Result<Expert, StoreError> {
    let raw_id: String = row.try_get("id")?;
    let bad = |problem: String| CorruptRow { table: "experts", id: raw_id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let id = ExpertId::parse(&raw_id).ok_or_else(|| bad("id".into()))?;
    let kind = text("kind")?;
    let gender = text("gender")?;
    let county = text("county")?;
    let outside = text("outside_jiangmen")?;
    let locality = if county.is_empty() {
        Locality::Outside(outside)
    } else {
        Locality::County(Bureau::from_division_code(&county).ok_or_else(|| bad(format!("county {county}")))?)
    };
    let dec = |col: &str| -> Result<String, StoreError> {
        let stored = text(col)?;
        Ok(if stored.is_empty() { stored } else { key.decrypt(&stored)? })
    };
    let account_enc = text("bank_account_enc")?;
    let bank_account = if account_enc.is_empty() {
        None
    } else {
        Some(BankAccount {
            holder_name: text("bank_holder_name")?,
            bank_name: text("bank_name")?,
            branch_name: text("bank_branch")?,
            account_number: key.decrypt(&account_enc)?,
        })
    };
    let organisation = |name: String, code: String, institution: String| -> Result<Organisation, CorruptRow> {
        Ok(Organisation {
            name,
            credit_code: if code.is_empty() {
                None
            } else {
                Some(CreditCode::parse(&code).map_err(|e| bad(format!("credit code: {e}")))?)
            },
            institution_id: if institution.is_empty() {
                None
            } else {
                Some(InstitutionId::parse(&institution).ok_or_else(|| bad("institution id".into()))?)
            },
        })
    };
    let employer_name = text("employer_name")?;
    let employer = if employer_name.is_empty() {
        None
    } else {
        Some(Employer {
            organisation: organisation(employer_name, text("employer_credit_code")?, text("employer_institution_id")?)?,
            post: text("employer_post")?,
            since: opt_date(&text("employer_since")?).map_err(bad)?,
        })
    };
    let represented_name = text("represented_name")?;
    let represented_unit = if represented_name.is_empty() {
        None
    } else {
        Some(organisation(represented_name, text("represented_credit_code")?, text("represented_institution_id")?)?)
    };
    let status = text("status")?;
    let profile = Profile {
        kind: ExpertKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        name: text("name")?,
        gender: if gender.is_empty() {
            None
        } else {
            Some(Gender::from_code(&gender).ok_or_else(|| bad(format!("gender {gender}")))?)
        },
        birth_date: opt_date(&text("birth_date")?).map_err(bad)?,
        identity: placeholder_document(),
        other_identities: Vec::new(),
        locality,
        contact: Contact { mobile: dec("mobile_enc")?, email: dec("email_enc")?, address: dec("address_enc")? },
        bank_account,
        employer,
        represented_unit,
        categories: Vec::new(),
        conditions: Vec::new(),
        specialties: Vec::new(),
        professional_title: text("professional_title")?,
    };
    Ok(Expert {
        id,
        profile,
        status: ExpertStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        civil_servant: Vec::new(),
        trained: row.try_get::<i32, _>("trained")? != 0,
        last_confirmed_year: row.try_get::<i32, _>("last_confirmed_year")?,
        application_id: text("application_id")?,
        current_term_end: opt_date(&text("current_term_end")?).map_err(bad)?,
        appointment: None,
        revision: row.try_get::<i64, _>("revision")?,
        created_at: parse_instant(&text("created_at")?).map_err(|e| bad(format!("created_at: {e}")))?,
        updated_at: parse_instant(&text("updated_at")?).map_err(|e| bad(format!("updated_at: {e}")))?,
    })
}

/// Stands in for the identity until the documents are attached; never leaves `assemble`.
fn placeholder_document() -> IdentityDocument {
    IdentityDocument::parse(DocumentType::Passport, "PLACEHOLDER", "XXX", NaiveDate::MAX)
        .expect("a well-formed passport number")
}

fn civil_servant_from_row(row: &impl Columns) -> Result<(String, CivilServantEntry), StoreError> {
    let id = row.text("expert_id")?;
    let bad = |problem: String| CorruptRow { table: "expert_civil_servant_entries", id: id.clone(), problem };
    let status = row.text("status")?;
    let recorded_at = row.text("recorded_at")?;
    let entry = CivilServantEntry {
        seq: row.int("seq")?,
        valid_from: opt_date(&row.text("valid_from")?).map_err(bad)?,
        status: CivilServantStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        evidence: from_json(&row.text("evidence_json")?).map_err(bad)?,
        recorded_by: opt_actor(&row.text("recorded_by_json")?)
            .map_err(bad)?
            .ok_or_else(|| bad("recorded_by".into()))?,
        on_behalf: opt_on_behalf(&row.text("on_behalf_json")?).map_err(bad)?,
        recorded_at: parse_instant(&recorded_at).map_err(|e| bad(format!("recorded_at: {e}")))?,
    };
    Ok((id, entry))
}

fn change_from_row(row: &AnyRow) -> Result<ExpertChange, StoreError> {
    let raw_id: String = row.try_get("id")?;
    let bad = |problem: String| CorruptRow { table: "expert_changes", id: raw_id.clone(), problem };
    let expert_id: String = row.try_get("expert_id")?;
    let at: String = row.try_get("at")?;
    Ok(ExpertChange {
        id: ChangeId::parse(&raw_id).ok_or_else(|| bad("id".into()))?,
        expert_id: ExpertId::parse(&expert_id).ok_or_else(|| bad("expert_id".into()))?,
        at: parse_instant(&at).map_err(|e| bad(format!("at: {e}")))?,
        actor: opt_actor(&row.try_get::<String, _>("actor_json")?).map_err(bad)?.ok_or_else(|| bad("actor".into()))?,
        reason: row.try_get("reason")?,
        on_behalf: opt_on_behalf(&row.try_get::<String, _>("on_behalf_json")?).map_err(bad)?,
        changes: from_json::<Vec<FieldChange>>(&row.try_get::<String, _>("changes_json")?).map_err(bad)?,
    })
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("json: {e}"))
}

pub(crate) fn actor_json(actor: Option<&Actor>) -> String {
    actor.map(json).unwrap_or_default()
}

pub(crate) fn opt_actor(text: &str) -> Result<Option<Actor>, String> {
    if text.is_empty() { Ok(None) } else { from_json(text).map(Some) }
}

pub(crate) fn on_behalf_json(o: Option<&OnBehalf>) -> String {
    o.map(|o| {
        serde_json::json!({ "channel": o.channel, "received_at": format_instant(o.received_at), "note": o.note })
            .to_string()
    })
    .unwrap_or_default()
}

pub(crate) fn opt_on_behalf(text: &str) -> Result<Option<OnBehalf>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = from_json(text)?;
    let field = |name: &str| v.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    let received = field("received_at").ok_or("on_behalf without received_at")?;
    Ok(Some(OnBehalf {
        channel: field("channel").unwrap_or_default(),
        received_at: parse_instant(&received).map_err(|e| format!("received_at: {e}"))?,
        note: field("note").unwrap_or_default(),
    }))
}

pub(crate) fn opt_date(text: &str) -> Result<Option<NaiveDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map(Some).map_err(|e| format!("date {text}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_stay_empty_and_others_are_ciphertext() {
        let key = PersonalDataKey::from_hex(&PersonalDataKey::generate_hex()).unwrap();
        assert_eq!(enc(&key, ""), "");
        let stored = enc(&key, "13812345678");
        assert!(stored.starts_with("pd1:") && !stored.contains("13812345678"));
    }

    #[test]
    fn on_behalf_round_trips_through_its_column() {
        let o = OnBehalf {
            channel: "ENTRY_CHANNEL_PHONE".into(),
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            note: "电话".into(),
        };
        assert_eq!(opt_on_behalf(&on_behalf_json(Some(&o))).unwrap(), Some(o));
        assert_eq!(opt_on_behalf("").unwrap(), None);
    }
}
