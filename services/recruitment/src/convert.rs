//! proto <-> domain. Every problem with a request becomes a field violation naming the field.

pub mod applications;

use std::collections::HashSet;

use supervision_kit::{
    Bureau, FieldViolations, Page, SpecialtyCode,
    auth::Actor,
    convert::{long_text, optional_text, required_enum, required_text, required_time, timestamp},
};
use supervision_proto::{common, recruitment as pb};
use tonic::Status;

use crate::domain::{
    Call, CallFilter, CallId, CallStatus, Compliance, NewCall, NewPublication, PUBLICATION_CHANNELS, Publication,
    RequiredMaterial,
};

const MAX_TITLE_CHARS: usize = 200;
const MAX_BODY_CHARS: usize = 20_000;
const MAX_LIST_ITEMS: usize = 100;
const MAX_SHORT_CHARS: usize = 200;
/// Article 7 began with the policy (2022); a call far in the future is a typo.
const YEARS: std::ops::RangeInclusive<i32> = 2022..=2100;

pub fn new_call(req: pb::CreateCallRequest) -> Result<NewCall, Status> {
    let mut v = FieldViolations::new();
    if !YEARS.contains(&req.year) {
        v.add("year", format!("must be between {} and {}", YEARS.start(), YEARS.end()));
    }
    let title = required_text(&req.title, "title", MAX_TITLE_CHARS, &mut v);
    let body = long_text(&req.body, "body", MAX_BODY_CHARS, true, &mut v);

    let mut categories = Vec::new();
    let mut seen = HashSet::new();
    check_count(req.categories_sought.len(), "categories_sought", &mut v);
    for (i, &value) in req.categories_sought.iter().enumerate() {
        let field = format!("categories_sought[{i}]");
        if let Some(c) =
            required_enum::<common::ExpertCategory>(value, &field, "one of the 11 categories of article 5", &mut v)
        {
            if seen.insert(value) {
                categories.push(c.as_str_name().to_owned());
            } else {
                v.add(field, "is listed twice");
            }
        }
    }

    check_count(req.specialties_sought.len(), "specialties_sought", &mut v);
    let specialties = req
        .specialties_sought
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let parsed = SpecialtyCode::parse(s.code.trim());
            if parsed.is_none() {
                v.add(
                    format!("specialties_sought[{i}].code"),
                    "must be an occupational classification code such as 4-07-05-01",
                );
            }
            parsed
        })
        .collect();

    check_count(req.industries_sought.len(), "industries_sought", &mut v);
    let industries = req
        .industries_sought
        .iter()
        .enumerate()
        .map(|(i, s)| required_text(s, &format!("industries_sought[{i}]"), MAX_SHORT_CHARS, &mut v))
        .collect();

    let window_start = required_time(req.application_start_time.as_ref(), "application_start_time", &mut v);
    let window_end = required_time(req.application_end_time.as_ref(), "application_end_time", &mut v);
    if let (Some(start), Some(end)) = (window_start, window_end)
        && end <= start
    {
        v.add("application_end_time", "must be after application_start_time");
    }

    check_count(req.required_materials.len(), "required_materials", &mut v);
    let required_materials = req
        .required_materials
        .iter()
        .enumerate()
        .map(|(i, m)| required_material(m, &format!("required_materials[{i}]"), &mut v))
        .collect::<Vec<_>>();

    v.check()?;
    let (Some(window_start), Some(window_end)) = (window_start, window_end) else {
        unreachable!("a missing window time recorded a violation");
    };
    Ok(NewCall {
        year: req.year,
        title,
        body,
        categories,
        specialties,
        industries,
        window_start,
        window_end,
        required_materials: required_materials.into_iter().flatten().collect(),
    })
}

fn check_count(n: usize, field: &str, v: &mut FieldViolations) {
    if n > MAX_LIST_ITEMS {
        v.add(field, format!("must have at most {MAX_LIST_ITEMS} items"));
    }
}

fn required_material(m: &pb::RequiredMaterial, field: &str, v: &mut FieldViolations) -> Option<RequiredMaterial> {
    let kind = required_enum::<pb::MaterialKind>(m.kind, &format!("{field}.kind"), "a material kind", v);
    let optional_name = |value: i32, sub: &str, v: &mut FieldViolations, name: fn(i32) -> Option<&'static str>| {
        if value == 0 {
            return String::new();
        }
        name(value).map(str::to_owned).unwrap_or_else(|| {
            v.add(format!("{field}.{sub}"), "is not a known value");
            String::new()
        })
    };
    let category =
        optional_name(m.category, "category", v, |x| common::ExpertCategory::try_from(x).ok().map(|c| c.as_str_name()));
    let condition = optional_name(m.condition, "condition", v, |x| {
        common::EligibilityCondition::try_from(x).ok().map(|c| c.as_str_name())
    });
    let description = optional_text(&m.description, &format!("{field}.description"), MAX_SHORT_CHARS, v);
    Some(RequiredMaterial {
        kind: kind?.as_str_name().to_owned(),
        category,
        condition,
        description,
        mandatory: m.mandatory,
    })
}

const MAX_ADDRESS_CHARS: usize = 500;
const MAX_REASON_CHARS: usize = 1000;

/// A publication to record: a channel of article 7(一), a day not after `today`, an address.
pub fn new_publication(
    req: &pb::RecordCallPublicationRequest,
    today: chrono::NaiveDate,
) -> Result<(CallId, NewPublication), Status> {
    let mut v = FieldViolations::new();
    let call_id = CallId::parse(&req.call_id);
    if call_id.is_none() {
        v.add("call_id", "is not a call id");
    }
    let channel = required_enum::<pb::PublicationChannel>(
        req.channel,
        "channel",
        "the WeChat official account, the official website or news media",
        &mut v,
    )
    .map(|c| c.as_str_name().to_owned());
    debug_assert!(channel.as_deref().is_none_or(|c| PUBLICATION_CHANNELS.contains(&c)));
    let publish_date = supervision_kit::convert::required_date(req.publish_date.as_ref(), "publish_date", &mut v);
    if publish_date.is_some_and(|d| d > today) {
        v.add("publish_date", format!("must not be after today ({today}): record a publication once it appeared"));
    }
    let address = required_text(&req.address, "address", MAX_ADDRESS_CHARS, &mut v);
    v.check()?;
    match (call_id, channel, publish_date) {
        (Some(id), Some(channel), Some(publish_date)) => Ok((id, NewPublication { channel, publish_date, address })),
        _ => unreachable!("a missing field recorded a violation"),
    }
}

/// The call and the reason of a close or a cancellation.
pub fn call_and_reason(call_id: &str, reason: &str) -> Result<(CallId, String), Status> {
    let mut v = FieldViolations::new();
    let id = CallId::parse(call_id);
    if id.is_none() {
        v.add("call_id", "is not a call id");
    }
    let reason = required_text(reason, "reason", MAX_REASON_CHARS, &mut v);
    v.check()?;
    Ok((id.expect("checked above"), reason))
}

pub fn compliance_year(year: i32) -> Result<i32, Status> {
    if YEARS.contains(&year) {
        Ok(year)
    } else {
        Err(supervision_kit::error::invalid_field(
            "year",
            format!("must be between {} and {}", YEARS.start(), YEARS.end()),
        ))
    }
}

pub fn compliance_to_proto(c: Compliance) -> pb::GetCallComplianceResponse {
    pb::GetCallComplianceResponse {
        year: c.year,
        published_calls: i32::try_from(c.call_ids.len()).unwrap_or(i32::MAX),
        required_calls: i32::try_from(c.required).unwrap_or(i32::MAX),
        met: c.met(),
        call_ids: c.call_ids,
        warnings: c.warnings,
    }
}

fn publication_to_proto(p: &Publication) -> pb::Publication {
    pb::Publication {
        channel: pb::PublicationChannel::from_str_name(&p.details.channel).map_or(0, |c| c as i32),
        publish_date: Some(supervision_kit::convert::date(p.details.publish_date)),
        address: p.details.address.clone(),
        recorded_by: Some(actor_to_proto(&p.recorded_by)),
        record_time: Some(timestamp(p.recorded_at)),
    }
}

pub fn call_id(raw: &str, field: &str) -> Result<CallId, Status> {
    CallId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not a call id"))
}

pub fn call_listing(req: &pb::ListCallsRequest) -> Result<(CallFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| CallId::parse(t).is_some(), &mut v);
    let year = match req.year {
        0 => None,
        y if YEARS.contains(&y) => Some(y),
        _ => {
            v.add("year", format!("must be 0 (any) or between {} and {}", YEARS.start(), YEARS.end()));
            None
        }
    };
    let status = match pb::CallStatus::try_from(req.status) {
        Ok(pb::CallStatus::Unspecified) => None,
        Ok(s) => Some(status_from_proto(s)),
        Err(_) => {
            v.add("status", "is not a call status");
            None
        }
    };
    v.check()?;
    Ok((CallFilter { year, status, public_only: false }, page))
}

fn status_from_proto(s: pb::CallStatus) -> CallStatus {
    match s {
        pb::CallStatus::Unspecified | pb::CallStatus::Draft => CallStatus::Draft,
        pb::CallStatus::Published => CallStatus::Published,
        pb::CallStatus::Closed => CallStatus::Closed,
        pb::CallStatus::Cancelled => CallStatus::Cancelled,
    }
}

fn status_to_proto(s: CallStatus) -> pb::CallStatus {
    match s {
        CallStatus::Draft => pb::CallStatus::Draft,
        CallStatus::Published => pb::CallStatus::Published,
        CallStatus::Closed => pb::CallStatus::Closed,
        CallStatus::Cancelled => pb::CallStatus::Cancelled,
    }
}

pub fn call_to_proto(call: Call) -> pb::Call {
    let d = call.details;
    pb::Call {
        id: call.id.to_string(),
        year: d.year,
        title: d.title,
        body: d.body,
        categories_sought: d
            .categories
            .iter()
            .filter_map(|c| common::ExpertCategory::from_str_name(c).map(|c| c as i32))
            .collect(),
        specialties_sought: d
            .specialties
            .iter()
            .map(|s| common::SpecialtyCode { code: s.as_str().to_owned(), name: String::new() })
            .collect(),
        industries_sought: d.industries,
        application_start_time: Some(timestamp(d.window_start)),
        application_end_time: Some(timestamp(d.window_end)),
        required_materials: d
            .required_materials
            .iter()
            .map(|m| pb::RequiredMaterial {
                kind: pb::MaterialKind::from_str_name(&m.kind).map_or(0, |k| k as i32),
                category: common::ExpertCategory::from_str_name(&m.category).map_or(0, |c| c as i32),
                condition: common::EligibilityCondition::from_str_name(&m.condition).map_or(0, |c| c as i32),
                description: m.description.clone(),
                mandatory: m.mandatory,
            })
            .collect(),
        publications: call.publications.iter().map(publication_to_proto).collect(),
        status: status_to_proto(call.status) as i32,
        edition_number: call.edition_number,
        created_by: Some(actor_to_proto(&call.created_by)),
        create_time: Some(timestamp(call.created_at)),
        update_time: Some(timestamp(call.updated_at)),
    }
}

pub(crate) fn actor_to_proto(a: &Actor) -> common::Actor {
    let mut actor = a.to_proto();
    if actor.bureau == 0 {
        actor.bureau = a.bureau.as_deref().and_then(Bureau::from_division_code).map_or(0, |b| b.to_proto() as i32);
    }
    actor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> pb::CreateCallRequest {
        let now = chrono::Utc::now();
        pb::CreateCallRequest {
            request_id: "r".into(),
            year: 2026,
            title: "2026 年第二批社会监督专家征集通知".into(),
            body: "根据《江门市职业技能培训评价社会监督评估制度》……".into(),
            categories_sought: vec![common::ExpertCategory::Technician as i32],
            specialties_sought: vec![common::SpecialtyCode { code: "4-07-05".into(), name: String::new() }],
            industries_sought: vec!["制造业".into()],
            application_start_time: Some(timestamp(now)),
            application_end_time: Some(timestamp(now + chrono::Duration::days(20))),
            required_materials: vec![pb::RequiredMaterial {
                kind: pb::MaterialKind::CategoryEvidence as i32,
                category: common::ExpertCategory::Technician as i32,
                condition: 0,
                description: "技师证书".into(),
                mandatory: true,
            }],
        }
    }

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_valid_call_converts_and_round_trips() {
        let new = new_call(valid()).unwrap();
        assert_eq!(new.categories, ["EXPERT_CATEGORY_TECHNICIAN"]);
        let actor = Actor { subject: "a".into(), role: "CITY_ADMIN".into(), bureau: Some("440700".into()) };
        let call = Call::draft(new, actor, chrono::Utc::now());
        let proto = call_to_proto(call);
        assert_eq!(proto.categories_sought, valid().categories_sought);
        assert_eq!(proto.required_materials, valid().required_materials);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut req = valid();
        req.year = 1999;
        req.title = String::new();
        req.categories_sought =
            vec![common::ExpertCategory::Technician as i32, common::ExpertCategory::Technician as i32, 99];
        req.specialties_sought[0].code = "9-99".into();
        std::mem::swap(&mut req.application_start_time, &mut req.application_end_time);
        req.required_materials[0].kind = 0;
        assert_eq!(
            fields(&new_call(req).unwrap_err()),
            [
                "year",
                "title",
                "categories_sought[1]",
                "categories_sought[2]",
                "specialties_sought[0].code",
                "application_end_time",
                "required_materials[0].kind"
            ]
        );
    }
}
