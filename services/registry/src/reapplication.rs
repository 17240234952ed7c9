//! D21: what a reviewer must know about an applicant's past with the pool. Recruitment asks at
//! SubmitApplication with the applicant's identity document; the registry finds an earlier record
//! by the document's blind index (never by the number in the clear) and answers with flags:
//!
//! - RECENTLY_TERMINATED: terminated under article 12(一) (a substantiated breach of article 9,
//!   ground DISCIPLINE) or 12(二) (false materials, FALSE_MATERIALS) and the fifth anniversary of
//!   the termination has not come: the warning runs to the day before it. A warning the reviewer
//!   acknowledges, not a block.
//! - CURRENTLY_APPOINTED: a term that runs on the day judged.
//! - OPEN_INCIDENT: an incident not yet decided.

use chrono::{Months, NaiveDate};
use sqlx::Row;
use supervision_kit::{
    Db, FieldViolations,
    convert::{date, optional_date},
    personal::PersonalDataKey,
};
use supervision_proto::registry as pb;
use tonic::Status;

use crate::store::experts as expert_sql;

/// How long a termination under 12(一)(二) is flagged (D21).
const WARNING_YEARS: u32 = 5;

/// The last day a termination on `terminated` is flagged: the day before its fifth anniversary.
pub fn warning_until(terminated: NaiveDate) -> NaiveDate {
    let anniversary = terminated.checked_add_months(Months::new(12 * WARNING_YEARS)).unwrap_or(NaiveDate::MAX);
    anniversary.pred_opt().unwrap_or(anniversary)
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    s.parse::<NaiveDate>().ok()
}

fn ground_value(code: &str) -> i32 {
    pb::StatusChangeGround::from_str_name(&format!("STATUS_CHANGE_GROUND_{code}")).map_or(0, |g| g as i32)
}

/// Answers GetReapplicationFlags for `req`, judged on its `as_of` or `today`.
pub async fn flags(
    db: &Db,
    key: &PersonalDataKey,
    req: &pb::GetReapplicationFlagsRequest,
    today: NaiveDate,
) -> Result<pb::GetReapplicationFlagsResponse, Status> {
    let mut v = FieldViolations::new();
    let document = crate::convert::experts::identity_document(req.identity.as_ref(), "identity", today, &mut v);
    let as_of = optional_date(req.as_of.as_ref(), "as_of", &mut v).unwrap_or(today);
    v.check()?;
    let document = document.expect("a valid document when there are no violations");
    let sql = |e: sqlx::Error| supervision_kit::internal(e);
    let mut conn = db.pool().acquire().await.map_err(sql)?;
    let holder = expert_sql::document_holder(&mut conn, &key.blind_index(&document.index_input()))
        .await
        .map_err(supervision_kit::internal)?;
    let Some(expert_id) = holder else {
        return Ok(pb::GetReapplicationFlagsResponse::default());
    };
    let expert_id = expert_id.to_string();
    let status: String = sqlx::query_scalar("SELECT status FROM experts WHERE id = $1")
        .bind(&expert_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(sql)?;
    let mut flags = Vec::new();

    let terminations = sqlx::query(
        "SELECT ground, effective_date, reason FROM expert_status_changes WHERE expert_id = $1 \
         AND ground IN ('DISCIPLINE', 'FALSE_MATERIALS') ORDER BY effective_date DESC, id DESC",
    )
    .bind(&expert_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(sql)?;
    for row in &terminations {
        let ground: String = row.try_get("ground").map_err(sql)?;
        let Some(on) = parse_day(&row.try_get::<String, _>("effective_date").map_err(sql)?) else { continue };
        let until = warning_until(on);
        if on <= as_of && as_of <= until {
            let article =
                if ground == "DISCIPLINE" { "第十二条第（一）项" } else { "第十二条第（二）项" };
            flags.push(pb::ReapplicationFlag {
                kind: pb::ReapplicationFlagKind::RecentlyTerminated as i32,
                ground: ground_value(&ground),
                date: Some(date(on)),
                warning_until: Some(date(until)),
                detail: format!("{on} 依{article}取消专家资格，五年内（至 {until}）重新申报须经审核人员确认知悉 (D21)"),
            });
        }
    }

    let running = sqlx::query(
        "SELECT term_start, term_end FROM appointments WHERE expert_id = $1 AND end_reason = '' \
         ORDER BY term_number DESC",
    )
    .bind(&expert_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(sql)?;
    for row in &running {
        let start = parse_day(&row.try_get::<String, _>("term_start").map_err(sql)?);
        let end = parse_day(&row.try_get::<String, _>("term_end").map_err(sql)?);
        if let (Some(start), Some(end)) = (start, end)
            && start <= as_of
            && as_of <= end
        {
            flags.push(pb::ReapplicationFlag {
                kind: pb::ReapplicationFlagKind::CurrentlyAppointed as i32,
                date: Some(date(start)),
                detail: format!("现任专家，聘期 {start} 至 {end}"),
                ..Default::default()
            });
        }
    }

    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE expert_id = $1 AND status <> 'DECIDED'")
        .bind(&expert_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(sql)?;
    if open > 0 {
        flags.push(pb::ReapplicationFlag {
            kind: pb::ReapplicationFlagKind::OpenIncident as i32,
            detail: format!("有 {open} 件尚未处理完毕的事项"),
            ..Default::default()
        });
    }
    Ok(pb::GetReapplicationFlagsResponse {
        expert_id,
        status: pb::ExpertStatus::from_str_name(&format!("EXPERT_STATUS_{status}")).map_or(0, |s| s as i32),
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn the_warning_runs_to_the_day_before_the_fifth_anniversary() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(warning_until(d(2024, 3, 15)), d(2029, 3, 14));
        assert_eq!(warning_until(d(2024, 2, 29)), d(2029, 2, 27), "28 February is the anniversary in 2029");
        assert_eq!(warning_until(d(2026, 1, 1)).year(), 2030);
    }
}
