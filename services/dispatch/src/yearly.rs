//! D5's yearly acceptance classifications, computed by dispatch and delivered to the registry
//! (RecordYearlyAcceptance through the outbox, keyed `<expert_id>:<year>:<revision>`), which
//! alone proposes retirement on a streak and applies the appointment-year rule.
//!
//! Counted, for every expert and every calendar year that has ended (Asia/Shanghai), over the
//! assignments of tasks whose first session falls in that year, and only assignments the expert
//! was told of (a backup held in reserve and never notified is no dispatch):
//! - acceptance: ACCEPTED, COMPLETED;
//! - non-acceptance: DECLINED_ON_TIME, DECLINED_LATE, NO_SHOW, and NO_RESPONSE when the
//!   notification has evidence of delivery (the expert acknowledged it: state READ);
//! - neutral: DECLINED_EXEMPT, RECUSED, CANCELLED, CANCELLED_STATUS_CHANGE, UNUSED, and
//!   NO_RESPONSE without evidence of delivery;
//! - not yet counted: NOTIFIED (still waiting; the no-answer sweep decides it).
//!
//! Assignments of a non-random designation (`designate.rs`, D15) count like a draw's: D5 is
//! about whether the expert answered a dispatch, not about how they were chosen, so this is no
//! randomness statistic (those are the draw metrics, which leave designations out).
//!
//! ACCEPTING with at least one acceptance, else NON_ACCEPTING with at least one non-acceptance,
//! else NEUTRAL. A pass recounts every ended year; an expert-year whose classification or counts
//! differ from the last delivered gets the next revision (a correction), in one transaction with
//! its outbox row and audit entry. An unchanged recount writes nothing.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use sqlx::Row;
use supervision_kit::{
    Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    outbox::{self, Delivery},
    storage::{format_instant, parse_instant},
};
use supervision_proto::registry as rpb;

use crate::{error::Error, store::StoreError, sweep::dispatch_caller};

macro_rules! columns {
    () => {
        "expert_id, year, revision, classification, acceptances, non_acceptances, neutral_outcomes, computed_at"
    };
}

pub const JOB: &str = "dispatch-yearly-acceptances";
pub const JOB_METHOD: &str = "job:dispatch-yearly-acceptances";
pub const RECORD_YEARLY_ACCEPTANCE: &str = "/supervision.registry.v1.RegistryService/RecordYearlyAcceptance";

/// A classification as dispatch computed and delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearlyAcceptance {
    pub expert_id: String,
    pub year: i32,
    pub revision: i32,
    /// `ACCEPTING`, `NON_ACCEPTING` or `NEUTRAL`.
    pub classification: &'static str,
    pub acceptances: i32,
    pub non_acceptances: i32,
    pub neutral_outcomes: i32,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    acceptances: i32,
    non_acceptances: i32,
    neutral: i32,
}

impl Counts {
    fn classification(self) -> &'static str {
        if self.acceptances > 0 {
            "ACCEPTING"
        } else if self.non_acceptances > 0 {
            "NON_ACCEPTING"
        } else {
            "NEUTRAL"
        }
    }
}

/// How one assignment counts; `None` when it does not (yet).
fn outcome(status: &str, delivered: bool) -> Option<fn(&mut Counts)> {
    match status {
        "ACCEPTED" | "COMPLETED" => Some(|c| c.acceptances += 1),
        "DECLINED_ON_TIME" | "DECLINED_LATE" | "NO_SHOW" => Some(|c| c.non_acceptances += 1),
        "NO_RESPONSE" if delivered => Some(|c| c.non_acceptances += 1),
        "NO_RESPONSE" | "DECLINED_EXEMPT" | "RECUSED" | "CANCELLED" | "CANCELLED_STATUS_CHANGE" | "UNUSED" => {
            Some(|c| c.neutral += 1)
        }
        _ => None,
    }
}

fn classification_code(raw: &str) -> Option<&'static str> {
    ["ACCEPTING", "NON_ACCEPTING", "NEUTRAL"].into_iter().find(|c| *c == raw)
}

/// One pass: recounts every ended year and delivers what changed. Returns the classifications
/// written (new ones and corrections).
pub async fn run_pass(db: &Db, clock: &SharedClock) -> Result<Vec<YearlyAcceptance>, Error> {
    let now = clock.now();
    let this_year = supervision_reference::shanghai_today(clock).year();
    let year_start = format!("{this_year:04}-01-01");
    let (counted, previous) = {
        let mut conn = db.pool().acquire().await?;
        let read: HashSet<String> = sqlx::query(
            "SELECT DISTINCT assignment_id FROM notifications WHERE kind = 'ASSIGNMENT_OFFERED' AND state = 'READ'",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("assignment_id"))
        .collect::<Result<_, _>>()?;
        let rows = sqlx::query(
            "SELECT a.id, a.expert_id, a.status, t.first_session_date FROM assignments a \
             JOIN tasks t ON t.id = a.task_id WHERE a.notified_at <> '' AND t.first_session_date < $1",
        )
        .bind(&year_start)
        .fetch_all(&mut *conn)
        .await?;
        let mut counted: BTreeMap<(String, i32), Counts> = BTreeMap::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let first: String = row.try_get("first_session_date")?;
            let year: i32 = first.get(..4).and_then(|y| y.parse().ok()).ok_or_else(|| StoreError::Corrupt {
                id: id.clone(),
                problem: format!("first session date {first:?}"),
            })?;
            if let Some(count) = outcome(&status, read.contains(&id)) {
                count(counted.entry((row.try_get("expert_id")?, year)).or_default());
            }
        }
        let previous: BTreeMap<(String, i32), YearlyAcceptance> =
            sqlx::query(concat!("SELECT ", columns!(), " FROM yearly_acceptances WHERE year < $1"))
                .bind(i64::from(this_year))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| from_row(r).map(|y| ((y.expert_id.clone(), y.year), y)))
                .collect::<Result<_, _>>()?;
        (counted, previous)
    };
    let caller = dispatch_caller();
    let mut written = Vec::new();
    for ((expert_id, year), counts) in counted {
        let last = previous.get(&(expert_id.clone(), year));
        let next = YearlyAcceptance {
            revision: last.map_or(1, |l| l.revision + 1),
            classification: counts.classification(),
            acceptances: counts.acceptances,
            non_acceptances: counts.non_acceptances,
            neutral_outcomes: counts.neutral,
            computed_at: now,
            expert_id,
            year,
        };
        if last.is_some_and(|l| {
            (l.classification, l.acceptances, l.non_acceptances, l.neutral_outcomes)
                == (next.classification, next.acceptances, next.non_acceptances, next.neutral_outcomes)
        }) {
            continue;
        }
        if record(db, clock, &caller, &next, last.map(|l| l.revision)).await? {
            written.push(next);
        }
    }
    Ok(written)
}

/// Writes one classification (only over the revision `last` read) with its outbox row and audit
/// entry; false when another replica wrote it meanwhile.
async fn record(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    y: &YearlyAcceptance,
    last: Option<i32>,
) -> Result<bool, Error> {
    let mut tx = db.pool().begin().await?;
    let done = match last {
        None => {
            sqlx::query(
                "INSERT INTO yearly_acceptances (expert_id, year, revision, classification, acceptances, \
                 non_acceptances, neutral_outcomes, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (expert_id, year) DO NOTHING",
            )
            .bind(&y.expert_id)
            .bind(i64::from(y.year))
            .bind(i64::from(y.revision))
            .bind(y.classification)
            .bind(i64::from(y.acceptances))
            .bind(i64::from(y.non_acceptances))
            .bind(i64::from(y.neutral_outcomes))
            .bind(format_instant(y.computed_at))
            .execute(&mut *tx)
            .await?
        }
        Some(last) => {
            sqlx::query(
                "UPDATE yearly_acceptances SET revision = $1, classification = $2, acceptances = $3, \
                 non_acceptances = $4, neutral_outcomes = $5, computed_at = $6 \
                 WHERE expert_id = $7 AND year = $8 AND revision = $9",
            )
            .bind(i64::from(y.revision))
            .bind(y.classification)
            .bind(i64::from(y.acceptances))
            .bind(i64::from(y.non_acceptances))
            .bind(i64::from(y.neutral_outcomes))
            .bind(format_instant(y.computed_at))
            .bind(&y.expert_id)
            .bind(i64::from(y.year))
            .bind(i64::from(last))
            .execute(&mut *tx)
            .await?
        }
    };
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let key = format!("{}:{}:{}", y.expert_id, y.year, y.revision);
    let classification = match y.classification {
        "ACCEPTING" => rpb::YearClassification::Accepting,
        "NON_ACCEPTING" => rpb::YearClassification::NonAccepting,
        _ => rpb::YearClassification::Neutral,
    };
    let request = rpb::RecordYearlyAcceptanceRequest {
        request_id: key.clone(),
        expert_id: y.expert_id.clone(),
        year: y.year,
        revision: y.revision,
        classification: classification as i32,
        acceptances: y.acceptances,
        non_acceptances: y.non_acceptances,
        neutral_outcomes: y.neutral_outcomes,
    };
    let actor = caller.actor();
    let delivery =
        Delivery { destination: "registry", method: RECORD_YEARLY_ACCEPTANCE, idempotency_key: &key, actor: &actor };
    outbox::enqueue(&mut tx, clock, delivery, &request).await?;
    let change = Change {
        method: JOB_METHOD,
        request_id: &key,
        entity_type: "yearly_acceptance",
        entity_id: &format!("{}:{}", y.expert_id, y.year),
        action: if y.revision == 1 { "classify" } else { "correct" },
        before: last.map(|r| serde_json::json!({ "revision": r })),
        after: Some(serde_json::json!({
            "revision": y.revision,
            "classification": y.classification,
            "acceptances": y.acceptances,
            "non_acceptances": y.non_acceptances,
            "neutral_outcomes": y.neutral_outcomes,
        })),
    };
    audit::append(&mut tx, db.backend(), clock, caller, change).await?;
    tx.commit().await?;
    Ok(true)
}

/// Whose classifications a caller lists: city roles and auditors anyone's; an expert their own.
pub fn scope(caller: &Caller, expert_id: &str) -> Result<Option<String>, tonic::Status> {
    match caller.role {
        Role::Expert => {
            let own = caller.expert_id.clone().unwrap_or_default();
            if own.is_empty() || (!expert_id.is_empty() && expert_id != own) {
                return Err(tonic::Status::permission_denied("an expert reads their own classifications only"));
            }
            Ok(Some(own))
        }
        _ => Ok((!expert_id.is_empty()).then(|| expert_id.to_owned())),
    }
}

/// The page token: `<year>:<expert_id>` of the last item.
pub fn is_page_token(raw: &str) -> bool {
    split_token(raw).is_some()
}

fn split_token(raw: &str) -> Option<(i64, &str)> {
    let (year, expert) = raw.split_once(':')?;
    Some((year.parse().ok()?, expert)).filter(|(_, e)| !e.is_empty())
}

/// A page of classifications, by year then expert.
pub async fn list(
    db: &Db,
    expert_id: Option<&str>,
    year: Option<i32>,
    page: &Page,
) -> Result<(Vec<YearlyAcceptance>, Option<String>), Error> {
    let probe = page.probe();
    let (after_year, after_expert) = probe.after.as_deref().and_then(split_token).unwrap_or((0, ""));
    let mut conn = db.pool().acquire().await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM yearly_acceptances WHERE (year > $1 OR (year = $1 AND expert_id > $2)) \
           AND ($3 = '' OR expert_id = $3) AND ($4 = 0 OR year = $4) \
         ORDER BY year, expert_id LIMIT $5"
    ))
    .bind(after_year)
    .bind(after_expert)
    .bind(expert_id.unwrap_or_default())
    .bind(i64::from(year.unwrap_or_default()))
    .bind(i64::from(probe.size))
    .fetch_all(&mut *conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |y| format!("{}:{}", y.year, y.expert_id)))
}

/// The registry's YearlyAcceptance, as dispatch delivered it (`record_time` is the registry's
/// and is left empty here).
pub fn to_proto(y: &YearlyAcceptance) -> rpb::YearlyAcceptance {
    let classification = match y.classification {
        "ACCEPTING" => rpb::YearClassification::Accepting,
        "NON_ACCEPTING" => rpb::YearClassification::NonAccepting,
        _ => rpb::YearClassification::Neutral,
    };
    rpb::YearlyAcceptance {
        expert_id: y.expert_id.clone(),
        year: y.year,
        classification: classification as i32,
        revision: y.revision,
        acceptances: y.acceptances,
        non_acceptances: y.non_acceptances,
        neutral_outcomes: y.neutral_outcomes,
        source: rpb::AcceptanceSource::Dispatch as i32,
        record_time: None,
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<YearlyAcceptance, StoreError> {
    let expert_id: String = row.try_get("expert_id")?;
    let bad = |problem: String| StoreError::Corrupt { id: expert_id.clone(), problem };
    let small = |col: &str| -> Result<i32, StoreError> {
        let raw: i64 = row.try_get(col)?;
        i32::try_from(raw).map_err(|_| bad(format!("{col} {raw}")))
    };
    let classification: String = row.try_get("classification")?;
    let computed: String = row.try_get("computed_at")?;
    Ok(YearlyAcceptance {
        year: small("year")?,
        revision: small("revision")?,
        classification: classification_code(&classification)
            .ok_or_else(|| bad(format!("classification {classification:?}")))?,
        acceptances: small("acceptances")?,
        non_acceptances: small("non_acceptances")?,
        neutral_outcomes: small("neutral_outcomes")?,
        computed_at: parse_instant(&computed).map_err(|e| bad(format!("computed_at: {e}")))?,
        expert_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(outcomes: &[(&str, bool)]) -> (&'static str, Counts) {
        let mut c = Counts::default();
        for (status, delivered) in outcomes {
            if let Some(count) = outcome(status, *delivered) {
                count(&mut c);
            }
        }
        (c.classification(), c)
    }

    #[test]
    fn no_answer_counts_against_the_expert_only_with_evidence_of_delivery() {
        assert_eq!(classify(&[("NO_RESPONSE", true)]).0, "NON_ACCEPTING");
        let (class, c) = classify(&[("NO_RESPONSE", false)]);
        assert_eq!((class, c.neutral), ("NEUTRAL", 1));
    }

    #[test]
    fn one_acceptance_makes_the_year_accepting_and_neutral_outcomes_never_count_against() {
        assert_eq!(classify(&[("DECLINED_LATE", false), ("COMPLETED", false)]).0, "ACCEPTING");
        assert_eq!(classify(&[("NO_SHOW", false)]).0, "NON_ACCEPTING");
        assert_eq!(classify(&[("DECLINED_ON_TIME", false)]).0, "NON_ACCEPTING");
        let neutral = [
            ("DECLINED_EXEMPT", false),
            ("RECUSED", false),
            ("CANCELLED", false),
            ("CANCELLED_STATUS_CHANGE", false),
            ("UNUSED", false),
        ];
        let (class, c) = classify(&neutral);
        assert_eq!((class, c.neutral, c.non_acceptances), ("NEUTRAL", 5, 0));
        let (class, c) = classify(&[("NOTIFIED", true), ("RESERVED", false)]);
        assert_eq!((class, c), ("NEUTRAL", Counts::default()), "waiting and reserve places are not counted");
    }

    #[test]
    fn page_tokens_name_a_year_and_an_expert() {
        assert_eq!(split_token("2026:exp_1"), Some((2026, "exp_1")));
        assert!(!is_page_token("2026:"));
        assert!(!is_page_token("x:exp_1"));
    }
}
