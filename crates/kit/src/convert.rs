//! Request-conversion helpers every service's `convert.rs` uses: text fields, timestamps and
//! enums, each problem recorded as a field violation.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::FieldViolations;

/// The years a calendar date in a request may name (birth dates included); outside them the date
/// is a typo.
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

/// Trimmed text that must be present and at most `max` characters, without control characters.
pub fn required_text(raw: &str, field: &str, max: usize, v: &mut FieldViolations) -> String {
    let text = raw.trim();
    if text.is_empty() {
        v.add(field, "must not be empty");
    }
    check_text(text, field, max, v);
    text.to_owned()
}

/// Trimmed text of at most `max` characters, possibly empty.
pub fn optional_text(raw: &str, field: &str, max: usize, v: &mut FieldViolations) -> String {
    let text = raw.trim();
    check_text(text, field, max, v);
    text.to_owned()
}

/// Long text (a notice, a report) keeps its line breaks; other control characters are refused.
pub fn long_text(raw: &str, field: &str, max: usize, required: bool, v: &mut FieldViolations) -> String {
    let text = raw.trim();
    if required && text.is_empty() {
        v.add(field, "must not be empty");
    }
    if text.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        v.add(field, "must not contain control characters other than line breaks and tabs");
    }
    text.to_owned()
}

fn check_text(text: &str, field: &str, max: usize, v: &mut FieldViolations) {
    if text.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
    if text.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
}

/// A required timestamp, within years 2000 to 2199.
pub fn required_time(
    raw: Option<&prost_types::Timestamp>,
    field: &str,
    v: &mut FieldViolations,
) -> Option<DateTime<Utc>> {
    let Some(ts) = raw else {
        v.add(field, "is required");
        return None;
    };
    let t = u32::try_from(ts.nanos).ok().and_then(|n| DateTime::from_timestamp(ts.seconds, n));
    match t {
        Some(t) if (2000..2200).contains(&chrono::Datelike::year(&t)) => Some(t),
        _ => {
            v.add(field, "must be a valid time between the years 2000 and 2199");
            None
        }
    }
}

/// A required calendar date (`supervision.common.v1.Date`), each problem named under `field` or
/// its parts (`field.year`, `field.month`, `field.day`).
pub fn required_date(
    raw: Option<&supervision_proto::common::Date>,
    field: &str,
    v: &mut FieldViolations,
) -> Option<NaiveDate> {
    let Some(d) = raw else {
        v.add(field, "is required");
        return None;
    };
    let mut ok = true;
    if !DATE_YEARS.contains(&d.year) {
        v.add(format!("{field}.year"), format!("must be {} to {}", DATE_YEARS.start(), DATE_YEARS.end()));
        ok = false;
    }
    if !(1..=12).contains(&d.month) {
        v.add(format!("{field}.month"), "must be 1 to 12");
        ok = false;
    }
    if !ok {
        return None;
    }
    let date = u32::try_from(d.day).ok().and_then(|day| NaiveDate::from_ymd_opt(d.year, d.month.unsigned_abs(), day));
    if date.is_none() {
        v.add(format!("{field}.day"), format!("is not a day of {:04}-{:02}", d.year, d.month));
    }
    date
}

/// An optional calendar date: absent (or all zero) is `None`, anything else must be a real date.
pub fn optional_date(
    raw: Option<&supervision_proto::common::Date>,
    field: &str,
    v: &mut FieldViolations,
) -> Option<NaiveDate> {
    match raw {
        None => None,
        Some(d) if *d == supervision_proto::common::Date::default() => None,
        Some(d) => required_date(Some(d), field, v),
    }
}

/// A calendar date as the contracts carry it.
pub fn date(d: NaiveDate) -> supervision_proto::common::Date {
    supervision_proto::common::Date {
        year: d.year(),
        month: i32::try_from(d.month()).unwrap_or_default(),
        day: i32::try_from(d.day()).unwrap_or_default(),
    }
}

/// A timestamp as the contracts carry it.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// A proto enum value that must be set (not `*_UNSPECIFIED`) and known.
pub fn required_enum<E: TryFrom<i32>>(value: i32, field: &str, what: &str, v: &mut FieldViolations) -> Option<E> {
    if value == 0 {
        v.add(field, format!("must be {what}"));
        return None;
    }
    match E::try_from(value) {
        Ok(e) => Some(e),
        Err(_) => {
            v.add(field, format!("must be {what}"));
            None
        }
    }
}

/// An optional on-behalf entry (D16): a known channel, and a received time that is not after
/// `now` (nobody receives a phone call from the future).
pub fn on_behalf(
    raw: Option<&supervision_proto::common::OnBehalf>,
    field: &str,
    now: DateTime<Utc>,
    v: &mut FieldViolations,
) -> Option<crate::vocab::OnBehalf> {
    let raw = raw?;
    let channel = required_enum::<supervision_proto::common::EntryChannel>(
        raw.channel,
        &format!("{field}.channel"),
        "how it was received (phone, WeChat, in person, ...)",
        v,
    );
    let received_at = required_time(raw.received_time.as_ref(), &format!("{field}.received_time"), v);
    if received_at.is_some_and(|t| t > now) {
        v.add(format!("{field}.received_time"), "must not be in the future");
    }
    let note = optional_text(&raw.note, &format!("{field}.note"), 500, v);
    Some(crate::vocab::OnBehalf { channel: channel?.as_str_name().to_owned(), received_at: received_at?, note })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_bounded_and_clean() {
        let mut v = FieldViolations::new();
        assert_eq!(required_text("  江门  ", "name", 10, &mut v), "江门");
        assert!(v.is_empty());
        required_text(" ", "name", 10, &mut v);
        optional_text("一二三四五六", "head", 5, &mut v);
        optional_text("a\u{0}b", "head", 5, &mut v);
        assert_eq!(v.check().unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn long_text_keeps_line_breaks() {
        let mut v = FieldViolations::new();
        assert_eq!(long_text("第一段\n第二段", "body", 100, true, &mut v), "第一段\n第二段");
        assert!(v.is_empty());
    }

    #[test]
    fn dates_name_the_part_that_is_wrong() {
        use supervision_proto::common::Date;
        let mut v = FieldViolations::new();
        let d = required_date(Some(&Date { year: 2024, month: 2, day: 29 }), "d", &mut v);
        assert_eq!(d, NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(date(d.unwrap()), Date { year: 2024, month: 2, day: 29 });
        assert!(optional_date(Some(&Date::default()), "d", &mut v).is_none());
        assert!(v.is_empty());
        assert!(required_date(Some(&Date { year: 2023, month: 2, day: 29 }), "d", &mut v).is_none());
        assert!(required_date(Some(&Date { year: 2023, month: 13, day: 1 }), "d", &mut v).is_none());
        assert!(required_date(None, "d", &mut v).is_none());
        let status = v.check().unwrap_err();
        assert!(status.message().contains("d.day, d.month, d"), "{}", status.message());
    }

    #[test]
    fn times_must_be_present_and_plausible() {
        let mut v = FieldViolations::new();
        assert!(required_time(None, "t", &mut v).is_none());
        let far = prost_types::Timestamp { seconds: 10_000_000_000, nanos: 0 };
        assert!(required_time(Some(&far), "t", &mut v).is_none());
        assert_eq!(v.check().unwrap_err().code(), tonic::Code::InvalidArgument);
        let mut v = FieldViolations::new();
        let now = timestamp(Utc::now());
        assert!(required_time(Some(&now), "t", &mut v).is_some());
        assert!(v.is_empty());
    }
}
