//! Relations, the conflicts they make, and the draw pool: SQL only, portable across SQLite and
//! PostgreSQL. An institution's family (itself, its parent, its sub-units; D20) is a subquery,
//! so every statement stays a static string.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_kit::{
    Page,
    storage::{format_instant, parse_instant},
};

use super::{
    CorruptRow, StoreError,
    appointments::status_change_from_row,
    experts::{actor_json, date_text, from_json, json, on_behalf_json, opt_actor, opt_date, opt_on_behalf},
    institution_from_row,
};
use crate::domain::{
    CreditCode, ExpertId, ExpertStatus, Institution, InstitutionFamily, InstitutionId, Organisation, ProfileLinks,
    Relation, RelationId, RelationKind, RelationSource, StatusChange,
};

/// The columns `relation_from_row` reads.
macro_rules! relation_columns {
    () => {
        "id, expert_id, relation_type, institution_id, org_name, org_credit_code, counterpart_name, \
         counterpart_role, valid_from, valid_to, source, source_ref, evidence_json, note, recorded_by_json, \
         on_behalf_json, recorded_at, recorded_in_error, end_reason"
    };
}

/// The ids of the family of the institution `$1`: itself, its parent and its sub-units.
macro_rules! family_ids {
    () => {
        "SELECT id FROM institutions WHERE id = $1 OR parent_id = $1 \
         OR id = (SELECT parent_id FROM institutions WHERE id = $1)"
    };
}

pub async fn insert_relation(conn: &mut AnyConnection, r: &Relation) -> Result<(), sqlx::Error> {
    let (org_name, org_code) = r
        .organisation
        .as_ref()
        .map(|o| (o.name.clone(), o.credit_code.as_ref().map(ToString::to_string).unwrap_or_default()))
        .unwrap_or_default();
    sqlx::query(concat!(
        "INSERT INTO expert_relations (",
        relation_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(r.id.as_str())
    .bind(r.expert_id.as_str())
    .bind(r.kind.code())
    .bind(r.institution_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(org_name)
    .bind(org_code)
    .bind(&r.counterpart_name)
    .bind(&r.counterpart_role)
    .bind(date_text(r.valid_from))
    .bind(date_text(r.valid_to))
    .bind(r.source.code())
    .bind(&r.source_ref)
    .bind(json(&r.evidence))
    .bind(&r.note)
    .bind(actor_json(Some(&r.recorded_by)))
    .bind(on_behalf_json(r.on_behalf.as_ref()))
    .bind(format_instant(r.recorded_at))
    .bind(i32::from(r.recorded_in_error))
    .bind(&r.end_reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether the expert `id` is registered.
pub async fn expert_exists(conn: &mut AnyConnection, id: &ExpertId) -> Result<bool, sqlx::Error> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM experts WHERE id = $1").bind(id.as_str()).fetch_optional(&mut *conn).await?;
    Ok(found.is_some())
}

/// One relation.
pub async fn get_relation(conn: &mut AnyConnection, id: &RelationId) -> Result<Option<Relation>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", relation_columns!(), " FROM expert_relations WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| relation_from_row(&r)).transpose()
}

/// Ends a relation on `end` (only one still open) or marks it recorded in error (any not already
/// so), in one statement that takes the row's lock; `false` when the relation is not in that state
/// (or does not exist).
pub async fn end_relation(
    conn: &mut AnyConnection,
    id: &RelationId,
    end: Option<NaiveDate>,
    in_error: bool,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE expert_relations SET valid_to = CASE WHEN $2 = '' THEN valid_to ELSE $2 END, \
         recorded_in_error = $3, end_reason = $4 WHERE id = $1 AND recorded_in_error = 0 AND (valid_to = '' OR $3 = 1)",
    )
    .bind(id.as_str())
    .bind(date_text(end))
    .bind(i32::from(in_error))
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Filters of ListRelations.
#[derive(Debug, Clone, Default)]
pub struct RelationFilter {
    pub expert_id: Option<ExpertId>,
    /// Relations naming this institution, by id or by its credit code.
    pub institution_id: Option<InstitutionId>,
    pub kind: Option<RelationKind>,
    pub include_ended: bool,
}

/// One page of relations, newest first; ended ones (last day before `today`, or in error) only
/// when asked for.
pub async fn list_relations(
    conn: &mut AnyConnection,
    filter: &RelationFilter,
    today: NaiveDate,
    page: &Page,
) -> Result<Vec<Relation>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        relation_columns!(),
        " FROM expert_relations \
         WHERE ($1 = '' OR id < $1) \
           AND ($2 = '' OR expert_id = $2) \
           AND ($3 = '' OR institution_id = $3 OR (org_credit_code <> '' AND org_credit_code = \
                (SELECT credit_code FROM institutions WHERE id = $3))) \
           AND ($4 = '' OR relation_type = $4) \
           AND ($5 = 1 OR (recorded_in_error = 0 AND (valid_to = '' OR valid_to >= $6))) \
         ORDER BY id DESC LIMIT $7"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.expert_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(filter.institution_id.as_ref().map(ToString::to_string).unwrap_or_default())
    .bind(filter.kind.map(RelationKind::code).unwrap_or_default())
    .bind(i32::from(filter.include_ended))
    .bind(today.to_string())
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(relation_from_row).collect()
}

/// The institution `id` with its parent and its sub-units (D20); empty if `id` is unknown.
pub async fn institution_family(conn: &mut AnyConnection, id: &InstitutionId) -> Result<Vec<Institution>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT id, kind, name, credit_code, parent_id, county, address, head, status, created_at, updated_at \
         FROM institutions WHERE id IN (",
        family_ids!(),
        ") ORDER BY id"
    ))
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| institution_from_row(r).map_err(Into::into)).collect()
}

/// `column IN ($n, ...)` for `values` bound from placeholder `$first` on, or `None` for none.
fn bound_in(column: &str, first: usize, values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| {
        let list = (first..first + values.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        format!("{column} IN ({list})")
    })
}

/// A statement over the family's ids and credit codes bound as values (not a subquery), so that
/// each condition is answered by its column's index: an `IN (subquery)` under `OR` is a filter
/// PostgreSQL tests on every row, which made it scan all 100,000 experts for every pool read.
/// `where_ids` and `where_codes` name the columns compared.
fn family_statement(
    select: &str,
    where_ids: &[&str],
    where_codes: &[&str],
    family: &InstitutionFamily,
    order: &str,
) -> (String, Vec<String>) {
    let (ids, codes) = (family.ids(), family.credit_codes());
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    for (columns, values) in [(where_ids, &ids), (where_codes, &codes)] {
        for column in columns {
            conditions.extend(bound_in(column, binds.len() + 1, values));
            binds.extend(values.iter().cloned());
        }
    }
    if conditions.is_empty() {
        conditions.push("1 = 0".to_owned());
    }
    let sql = format!("{select} AND ({}) ORDER BY {order}", conditions.join(" OR "));
    (sql, binds)
}

/// Every relation not recorded in error that names a member of `family`, by institution id or by
/// credit code, by expert.
pub async fn family_relations(
    conn: &mut AnyConnection,
    family: &InstitutionFamily,
) -> Result<Vec<Relation>, StoreError> {
    let select = format!("SELECT {} FROM expert_relations WHERE recorded_in_error = 0", relation_columns!());
    let (sql, binds) = family_statement(&select, &["institution_id"], &["org_credit_code"], family, "expert_id, id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(relation_from_row).collect()
}

/// Experts whose employer or represented unit is a member of `family`, with those links.
pub async fn family_profile_links(
    conn: &mut AnyConnection,
    family: &InstitutionFamily,
) -> Result<Vec<(ExpertId, ProfileLinks)>, StoreError> {
    let (sql, binds) = family_statement(
        "SELECT id, employer_institution_id, employer_key, represented_institution_id, represented_credit_code \
         FROM experts WHERE 1 = 1",
        &["employer_institution_id", "represented_institution_id"],
        &["employer_key", "represented_credit_code"],
        family,
        "id",
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let raw: String = row.try_get("id")?;
            let id = ExpertId::parse(&raw).ok_or_else(|| CorruptRow {
                table: "experts",
                id: raw.clone(),
                problem: "id".into(),
            })?;
            Ok((
                id,
                ProfileLinks {
                    employer_institution_id: row.try_get("employer_institution_id")?,
                    employer_credit_code: row.try_get("employer_key")?,
                    represented_institution_id: row.try_get("represented_institution_id")?,
                    represented_credit_code: row.try_get("represented_credit_code")?,
                },
            ))
        })
        .collect()
}

/// One candidate of the draw pool as stored.
#[derive(Debug, Clone)]
pub struct PoolRow {
    pub expert_id: ExpertId,
    pub status: ExpertStatus,
    pub trained: bool,
    pub employer_key: String,
    pub represented: Option<Organisation>,
    pub links: ProfileLinks,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    /// The day the term ended before its end, if it did.
    pub ended: Option<NaiveDate>,
    /// Specialty codes in ordinal order.
    pub specialties: Vec<String>,
}

/// A point in the history of the experts' pool facts (StreamDrawPool's sync `version`): on
/// PostgreSQL a read's snapshot (`xmin:xmax:xip,...`, migration 0010), on SQLite the value of the
/// one counter every change advances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolVersion {
    Postgres { snapshot: String, xmax: u64 },
    Sqlite(i64),
}

impl PoolVersion {
    /// The text a sync answer carries.
    pub fn encode(&self) -> String {
        match self {
            Self::Postgres { snapshot, .. } => format!("pg:{snapshot}"),
            Self::Sqlite(n) => format!("sqlite:{n}"),
        }
    }

    /// A version from its text; `None` for anything [`Self::encode`] does not make.
    pub fn decode(text: &str) -> Option<Self> {
        if let Some(n) = text.strip_prefix("sqlite:") {
            return n.parse().ok().filter(|n| *n >= 0).map(Self::Sqlite);
        }
        let snapshot = text.strip_prefix("pg:")?;
        let mut parts = snapshot.splitn(3, ':');
        let xmin: u64 = parts.next()?.parse().ok()?;
        let xmax: u64 = parts.next()?.parse().ok()?;
        let xip = parts.next()?;
        let in_progress = xip.split(',').filter(|x| !x.is_empty()).map(str::parse::<u64>);
        let well_formed = in_progress.map(|x| x.ok().filter(|x| (xmin..xmax).contains(x))).all(|x| x.is_some());
        (xmin <= xmax && well_formed).then(|| Self::Postgres { snapshot: snapshot.to_owned(), xmax })
    }

    /// Whether `self`, read from this database, can be a point before or at `now`: of the same
    /// backend and not after it (a version from after `now` comes from a state the database no
    /// longer has, as after a restore).
    pub fn precedes(&self, now: &Self) -> bool {
        match (self, now) {
            (Self::Postgres { xmax: since, .. }, Self::Postgres { xmax: now, .. }) => since <= now,
            (Self::Sqlite(since), Self::Sqlite(now)) => since <= now,
            _ => false,
        }
    }
}

/// The version the snapshot `conn` reads (read it inside the snapshot transaction).
pub async fn pool_version_now(conn: &mut AnyConnection, postgres: bool) -> Result<PoolVersion, StoreError> {
    let text = if postgres {
        let row = sqlx::query("SELECT CAST(pg_current_snapshot() AS TEXT) AS v").fetch_one(&mut *conn).await?;
        format!("pg:{}", row.try_get::<String, _>("v")?)
    } else {
        let row = sqlx::query("SELECT version FROM pool_clock WHERE id = 1").fetch_one(&mut *conn).await?;
        format!("sqlite:{}", row.try_get::<i64, _>("version")?)
    };
    PoolVersion::decode(&text)
        .ok_or_else(|| CorruptRow { table: "pool_clock", id: "1".into(), problem: format!("version {text}") }.into())
}

/// The experts (pool or not) whose pool facts changed since `since`.
macro_rules! changed_since {
    ($backend:expr) => {
        match $backend {
            // Not visible in the snapshot: begun at or after its xmax, or running when it was
            // taken (its xip). The same set as `NOT pg_visible_in_snapshot(txid, $1)`, without a
            // lower bound of xmin, which the oldest transaction open anywhere in the cluster (a
            // long report, a dump) holds back, making the index range cover every change since.
            // `= ANY(ARRAY(...))`, not `IN (SELECT ...)`: under OR only the first is an index
            // condition (a bitmap OR of two index scans instead of a scan of the table).
            PoolVersion::Postgres { .. } => {
                "SELECT expert_id FROM pool_versions \
                 WHERE txid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot)) \
                    OR txid = ANY(ARRAY(SELECT pg_snapshot_xip(CAST($1 AS pg_snapshot))))"
            }
            PoolVersion::Sqlite(_) => "SELECT expert_id FROM pool_versions WHERE version > $1",
        }
    };
}

fn bind_version<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    since: &PoolVersion,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match since {
        PoolVersion::Postgres { snapshot, .. } => query.bind(snapshot.clone()),
        PoolVersion::Sqlite(n) => query.bind(*n),
    }
}

/// The experts whose pool facts changed since `since`, in id order (whether or not they are in
/// the pool now; an expert no longer stored is among them).
pub async fn pool_changed_ids(conn: &mut AnyConnection, since: &PoolVersion) -> Result<Vec<String>, StoreError> {
    // Sorted here: with ORDER BY expert_id, SQLite walks the primary key through every expert
    // instead of the version's index.
    let rows = bind_version(sqlx::query(changed_since!(since)), since).fetch_all(&mut *conn).await?;
    let mut ids = rows.iter().map(|row| row.try_get::<String, _>("expert_id")).collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Which experts of the pool a read takes.
#[derive(Debug, Clone, Copy)]
pub enum PoolScope<'a> {
    /// In term on `first` (the term did not end, early or at its end, before it); with `only` not
    /// empty, just those ids.
    OnDate { first: NaiveDate, only: &'a [ExpertId] },
    /// Every expert of the pool, whatever their term (a whole copy for a sync).
    Everyone,
    /// The experts of the pool among these ids, whatever their term (a sync's few changes).
    Ids(&'a [String]),
    /// The experts of the pool whose facts changed since the version (a sync's many changes).
    ChangedSince(&'a PoolVersion),
}

/// The draw pool in expert id order, read by one statement and streamed row by row: every
/// expert that holds an appointment and is not NOT_APPOINTED, as `scope` narrows it, each with
/// their latest term and specialty codes in ordinal order (aggregated in SQL, so there is no
/// second query per batch).
///
/// The latest term is the one no later term of the same expert follows (an anti-join, which
/// PostgreSQL answers with one merge over the appointments index instead of one lookup per
/// expert); `string_agg(... ORDER BY ...)` is PostgreSQL's and SQLite's (3.44 and later). A list
/// of ids restricts both the experts and the specialties' aggregate, so each id is looked up by
/// the primary keys of experts and expert_specialties and the appointments' (expert_id,
/// term_number) index, whatever the size of the registry.
pub fn pool_rows<'c>(
    conn: &'c mut AnyConnection,
    scope: PoolScope<'_>,
) -> impl tokio_stream::Stream<Item = Result<PoolRow, StoreError>> + Send + 'c {
    use tokio_stream::StreamExt as _;
    let (experts, specialties, dated) = match scope {
        PoolScope::OnDate { only, .. } if !only.is_empty() => {
            // Only placeholders are spliced in; every id is bound.
            let list = (0..only.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
            (format!("e.id IN ({list}) AND "), format!(" WHERE expert_id IN ({list})"), true)
        }
        PoolScope::OnDate { .. } => (String::new(), String::new(), true),
        PoolScope::Everyone => (String::new(), String::new(), false),
        PoolScope::Ids(ids) => {
            let list = (0..ids.len()).map(|i| format!("${}", i + 1)).collect::<Vec<_>>().join(", ");
            (format!("e.id IN ({list}) AND "), format!(" WHERE expert_id IN ({list})"), false)
        }
        PoolScope::ChangedSince(since) => {
            let changed = changed_since!(since);
            (format!("e.id IN ({changed}) AND "), format!(" WHERE expert_id IN ({changed})"), false)
        }
    };
    let on_date =
        if dated { " AND (CASE WHEN a.ended_date <> '' THEN a.ended_date ELSE a.term_end END) >= $1" } else { "" };
    let sql = format!(
        "SELECT e.id, e.status, e.trained, e.employer_key, e.employer_institution_id, e.represented_name, \
         e.represented_credit_code, e.represented_institution_id, a.term_start, a.term_end, a.ended_date, \
         COALESCE(s.codes, '') AS specialty_codes \
         FROM experts e \
         JOIN appointments a ON a.expert_id = e.id \
         LEFT JOIN (SELECT expert_id, string_agg(code, ',' ORDER BY ordinal) AS codes \
                    FROM expert_specialties{specialties} GROUP BY expert_id) s ON s.expert_id = e.id \
         WHERE {experts}e.status <> 'NOT_APPOINTED' \
           AND NOT EXISTS (SELECT 1 FROM appointments n \
                           WHERE n.expert_id = a.expert_id AND n.term_number > a.term_number){on_date} \
         ORDER BY e.id",
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    match scope {
        PoolScope::OnDate { first, only } => {
            query = query.bind(first.to_string());
            for id in only {
                query = query.bind(id.as_str().to_owned());
            }
        }
        PoolScope::Everyone => {}
        PoolScope::Ids(ids) => {
            for id in ids {
                query = query.bind(id.clone());
            }
        }
        PoolScope::ChangedSince(since) => query = bind_version(query, since),
    }
    query.fetch(conn).map(|row| pool_row(&row?))
}

fn pool_row(row: &AnyRow) -> Result<PoolRow, StoreError> {
    let raw: String = row.try_get("id")?;
    let bad = |problem: String| CorruptRow { table: "experts", id: raw.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let day = |col: &str| -> Result<NaiveDate, StoreError> {
        Ok(opt_date(&text(col)?).map_err(bad)?.ok_or_else(|| bad(format!("{col} is empty")))?)
    };
    let status = text("status")?;
    let (represented_name, represented_code) = (text("represented_name")?, text("represented_credit_code")?);
    let represented_institution = text("represented_institution_id")?;
    let represented = (!represented_name.is_empty() || !represented_code.is_empty()).then(|| Organisation {
        name: represented_name,
        credit_code: CreditCode::parse(&represented_code).ok(),
        institution_id: InstitutionId::parse(&represented_institution),
    });
    Ok(PoolRow {
        expert_id: ExpertId::parse(&raw).ok_or_else(|| bad("id".into()))?,
        status: ExpertStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        trained: row.try_get::<i32, _>("trained")? != 0,
        employer_key: text("employer_key")?,
        represented,
        links: ProfileLinks {
            employer_institution_id: text("employer_institution_id")?,
            employer_credit_code: text("employer_key")?,
            represented_institution_id: represented_institution,
            represented_credit_code: represented_code,
        },
        term_start: day("term_start")?,
        term_end: day("term_end")?,
        ended: opt_date(&text("ended_date")?).map_err(bad)?,
        specialties: text("specialty_codes")?.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect(),
    })
}

/// Status changes recorded to take effect after `today`, oldest first.
pub async fn scheduled_changes(conn: &mut AnyConnection, today: NaiveDate) -> Result<Vec<StatusChange>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, expert_id, previous_status, status, ground, effective_date, at, reason, incident_id, \
         appointment_id, certificate_status, actor_json, evidence_json, on_behalf_json \
         FROM expert_status_changes WHERE effective_date > $1",
    )
    .bind(today.to_string())
    .fetch_all(&mut *conn)
    .await?;
    // Sorted here rather than by ORDER BY id, which SQLite answers by walking the primary key
    // through every status change ever recorded instead of the effective date's index.
    let mut changes = rows.iter().map(status_change_from_row).collect::<Result<Vec<_>, _>>()?;
    changes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(changes)
}

fn relation_from_row(row: &AnyRow) -> Result<Relation, StoreError> {
    let raw_id: String = row.try_get("id")?;
    let bad = |problem: String| CorruptRow { table: "expert_relations", id: raw_id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let kind = text("relation_type")?;
    let source = text("source")?;
    let expert = text("expert_id")?;
    let institution = text("institution_id")?;
    let (org_name, org_code) = (text("org_name")?, text("org_credit_code")?);
    let organisation = if org_name.is_empty() && org_code.is_empty() {
        None
    } else {
        let credit_code = if org_code.is_empty() {
            None
        } else {
            Some(CreditCode::parse(&org_code).map_err(|e| bad(format!("org_credit_code: {e}")))?)
        };
        Some(Organisation { name: org_name, credit_code, institution_id: None })
    };
    let recorded_at: DateTime<Utc> =
        parse_instant(&text("recorded_at")?).map_err(|e| bad(format!("recorded_at: {e}")))?;
    Ok(Relation {
        id: RelationId::parse(&raw_id).ok_or_else(|| bad("id".into()))?,
        expert_id: ExpertId::parse(&expert).ok_or_else(|| bad("expert_id".into()))?,
        kind: RelationKind::from_code(&kind).ok_or_else(|| bad(format!("relation_type {kind}")))?,
        institution_id: if institution.is_empty() {
            None
        } else {
            Some(InstitutionId::parse(&institution).ok_or_else(|| bad("institution_id".into()))?)
        },
        organisation,
        counterpart_name: text("counterpart_name")?,
        counterpart_role: text("counterpart_role")?,
        valid_from: opt_date(&text("valid_from")?).map_err(bad)?,
        valid_to: opt_date(&text("valid_to")?).map_err(bad)?,
        source: RelationSource::from_code(&source).ok_or_else(|| bad(format!("source {source}")))?,
        source_ref: text("source_ref")?,
        evidence: from_json(&text("evidence_json")?).map_err(bad)?,
        note: text("note")?,
        recorded_by: opt_actor(&text("recorded_by_json")?).map_err(bad)?.ok_or_else(|| bad("recorded_by".into()))?,
        on_behalf: opt_on_behalf(&text("on_behalf_json")?).map_err(bad)?,
        recorded_at,
        recorded_in_error: row.try_get::<i32, _>("recorded_in_error")? != 0,
        end_reason: text("end_reason")?,
    })
}
