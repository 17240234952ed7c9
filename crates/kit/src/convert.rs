//! Request-conversion helpers every service's `convert.rs` uses: text fields, timestamps and
//! enums, each problem recorded as a field violation.

use chrono::{DateTime, Utc};

use crate::FieldViolations;

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
