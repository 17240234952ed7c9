//! Relations and conflicts (article 9(六), D19, D20) through the public API: every kind recorded
//! with who recorded it and from what source, ended or marked in error but never deleted; the
//! conflict query over an institution with its parent and sub-units, with the edition's
//! look-back; the employer and the represented unit without a relation row; recusals from
//! dispatch, idempotent on the assignment.

use supervision_proto::{
    common::{
        BureauCode, Date, DateRange, EntryChannel, ExpertKind, OnBehalf, Organisation, RelationType, Role as PbRole,
    },
    registry::{
        ConflictPath, ConflictedExpert, CreateInstitutionRequest, EndRelationRequest, InstitutionType,
        ListAuditEntriesRequest, ListRelationsRequest, QueryConflictsRequest, RecordConflictRequest,
        RecordRelationRequest, Relation, RelationSource, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    Backend, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for, spawn_registry,
    with_token,
};
use tonic::Code;

use crate::appointments::{admin, appoint, appoint_request, date, id, reason_of, violated_fields};

on_both_backends!(
    every_relation_kind_is_recorded_and_listed,
    an_ended_employment_counts_within_the_look_back_and_not_after,
    the_parent_institutions_relations_count_for_a_sub_unit,
    the_employer_and_the_represented_unit_count_without_a_relation,
    a_recusal_is_recorded_once_per_assignment,
);

/// Valid credit codes, none of them the employer of `appointments::profile`.
pub(crate) const PARENT_CODE: &str = "91110000600037341L";
const OTHER_CODE: &str = "91110108551385082Q";

/// Valid resident identity numbers, one per person of these tests.
const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";
const ID_C: &str = "440705199001011231";
const ID_D: &str = "440784196611204569";

pub(crate) fn legal_entity(code: &str, name: &str) -> CreateInstitutionRequest {
    CreateInstitutionRequest {
        request_id: id(),
        r#type: InstitutionType::TechnicalSchool as i32,
        name: name.into(),
        credit_code: code.into(),
        parent_id: String::new(),
        county: BureauCode::Pengjiang as i32,
        address: "江门市蓬江区".into(),
        head: "陈校长".into(),
    }
}

pub(crate) fn sub_unit(parent: &str, name: &str) -> CreateInstitutionRequest {
    CreateInstitutionRequest {
        request_id: id(),
        r#type: InstitutionType::Studio as i32,
        name: name.into(),
        credit_code: String::new(),
        parent_id: parent.into(),
        county: BureauCode::Pengjiang as i32,
        address: String::new(),
        head: String::new(),
    }
}

pub(crate) async fn institution(registry: &RunningService, req: CreateInstitutionRequest) -> String {
    admin(registry).create_institution(req).await.unwrap().into_inner().institution.unwrap().id
}

/// An appointed expert's id.
pub(crate) async fn appointed(registry: &RunningService, name: &str, number: &str) -> String {
    appoint(registry, appoint_request(name, number, date(2025, 12, 1))).await.expert.unwrap().id
}

/// A relation recorded by bureau staff.
pub(crate) fn by_bureau(expert: &str, kind: RelationType, institution: &str) -> RecordRelationRequest {
    RecordRelationRequest {
        request_id: id(),
        expert_id: expert.into(),
        r#type: kind as i32,
        institution_id: institution.into(),
        source: RelationSource::Bureau as i32,
        ..Default::default()
    }
}

pub(crate) async fn record(registry: &RunningService, req: RecordRelationRequest) -> Relation {
    admin(registry).record_relation(req).await.unwrap().into_inner().relation.unwrap()
}

fn range(start: Option<Date>, end: Option<Date>) -> Option<DateRange> {
    Some(DateRange { start, end })
}

async fn conflicts(
    registry: &RunningService,
    institution: &str,
    first: Option<Date>,
    last: Option<Date>,
) -> Vec<ConflictedExpert> {
    let mut c = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    c.query_conflicts(QueryConflictsRequest {
        institution_id: institution.into(),
        dates: range(first, last),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .experts
}

/// (expert, relation type, path, relation id) of every reason.
fn reasons(experts: &[ConflictedExpert]) -> Vec<(String, i32, i32, String)> {
    experts
        .iter()
        .flat_map(|e| e.reasons.iter().map(|r| (e.expert_id.clone(), r.relation_type, r.path, r.relation_id.clone())))
        .collect()
}

async fn every_relation_kind_is_recorded_and_listed(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let school = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let expert = appointed(&registry, "李明", ID_A).await;
    let kinds = [
        RelationType::CurrentEmployment,
        RelationType::PastEmployment,
        RelationType::DirectorOrSupervisor,
        RelationType::ShareholderOrController,
        RelationType::PaidService,
        RelationType::TeacherStudent,
        RelationType::MasterApprentice,
        RelationType::Colleague,
        RelationType::Relative,
        RelationType::RepresentedUnit,
        RelationType::Competitor,
        RelationType::DeclaredConflict,
    ];
    for kind in kinds {
        let mut req = by_bureau(&expert, kind, &school);
        if matches!(
            kind,
            RelationType::TeacherStudent
                | RelationType::MasterApprentice
                | RelationType::Colleague
                | RelationType::Relative
        ) {
            req.counterpart_name = "陈校长".into();
            req.counterpart_role = "法定代表人".into();
        }
        if kind == RelationType::PastEmployment {
            req.valid = range(date(2015, 9, 1), date(2023, 6, 30));
        }
        let r = record(&registry, req).await;
        assert!(r.id.starts_with("rel_"));
        assert_eq!(r.r#type, kind as i32);
        assert_eq!(r.source, RelationSource::Bureau as i32);
        let by = r.recorded_by.unwrap();
        assert_eq!(by.role, PbRole::CityAdmin as i32, "who recorded it");
        assert!(r.record_time.is_some());
    }

    // Newest first; the past employment (ended) only with include_ended.
    let mut c = admin(&registry);
    let listed = |expert: &str, include_ended: bool, kind: RelationType| ListRelationsRequest {
        expert_id: expert.into(),
        include_ended,
        r#type: kind as i32,
        ..Default::default()
    };
    let all = c.list_relations(listed(&expert, true, RelationType::Unspecified)).await.unwrap().into_inner();
    let types: Vec<i32> = all.relations.iter().map(|r| r.r#type).collect();
    assert_eq!(types, kinds.iter().rev().map(|k| *k as i32).collect::<Vec<_>>());
    let current = c.list_relations(listed(&expert, false, RelationType::Unspecified)).await.unwrap().into_inner();
    assert_eq!(current.relations.len(), kinds.len() - 1, "the ended past employment is hidden");
    let one = c.list_relations(listed(&expert, true, RelationType::Relative)).await.unwrap().into_inner();
    assert_eq!(one.relations.len(), 1);
    assert_eq!(one.relations[0].counterpart_name, "陈校长");
    let by_school = c
        .list_relations(ListRelationsRequest {
            institution_id: school.clone(),
            include_ended: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_school.relations.len(), kinds.len());
    let err = c.list_relations(ListRelationsRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["expert_id"]);

    // Bad requests name their fields.
    let mut bad = by_bureau(&expert, RelationType::Relative, "");
    bad.source = RelationSource::SelfDeclared as i32;
    let err = c.record_relation(bad).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["institution_id", "counterpart_name", "on_behalf"]);
    let err = c.record_relation(by_bureau(&expert, RelationType::PastEmployment, &school)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["valid.end"]);
    let err = c
        .record_relation(by_bureau(&expert, RelationType::DirectorOrSupervisor, "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f"))
        .await
        .unwrap_err();
    assert!(violated_fields(&err).contains(&"institution_id".to_owned()), "{err:?}");

    // Staff enter what the expert declared with how it reached them (D16); an organisation not
    // registered is named by name and credit code.
    let mut declared = by_bureau(&expert, RelationType::PaidService, "");
    declared.organisation = Some(Organisation {
        name: "江门市示例咨询公司".into(),
        credit_code: OTHER_CODE.into(),
        institution_id: String::new(),
    });
    declared.source = RelationSource::SelfDeclared as i32;
    declared.on_behalf = Some(OnBehalf {
        channel: EntryChannel::Phone as i32,
        received_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
        note: "电话告知".into(),
    });
    let r = record(&registry, declared).await;
    assert_eq!(r.organisation.unwrap().credit_code, OTHER_CODE);
    assert_eq!(r.source, RelationSource::SelfDeclared as i32);

    // The expert declares their own, and only their own.
    let other = appointed(&registry, "王芳", ID_B).await;
    let token = expert_token(&expert);
    let mut as_expert = RegistryServiceClient::new(with_token(&registry.channel, Some(&token)));
    let mut own = by_bureau(&expert, RelationType::DeclaredConflict, &school);
    own.source = 0;
    let r = as_expert.record_relation(own).await.unwrap().into_inner().relation.unwrap();
    assert_eq!(r.source, RelationSource::SelfDeclared as i32);
    assert_eq!(r.recorded_by.unwrap().role, PbRole::Expert as i32);
    let mut theirs = by_bureau(&other, RelationType::DeclaredConflict, &school);
    theirs.source = 0;
    assert_eq!(as_expert.record_relation(theirs).await.unwrap_err().code(), Code::NotFound);
    let mine = as_expert.list_relations(ListRelationsRequest { institution_id: school, ..Default::default() }).await;
    assert!(mine.unwrap().into_inner().relations.iter().all(|r| r.expert_id == expert));

    // Operators do not shape pools by recording relations (docs/rpc-roles.md).
    let mut operator = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    let err = operator.record_relation(by_bureau(&other, RelationType::Colleague, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Each write is audited.
    let entries = c
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "relation".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), kinds.len() + 2);
    registry.stop().await;
}

async fn an_ended_employment_counts_within_the_look_back_and_not_after(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let school = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let (left, current, mistaken) = (
        appointed(&registry, "李明", ID_A).await,
        appointed(&registry, "王芳", ID_B).await,
        appointed(&registry, "张伟", ID_C).await,
    );
    let mut past = by_bureau(&left, RelationType::PastEmployment, &school);
    past.valid = range(date(2015, 9, 1), date(2022, 6, 30));
    let past = record(&registry, past).await;
    let employed = record(&registry, by_bureau(&current, RelationType::CurrentEmployment, &school)).await;
    let error = record(&registry, by_bureau(&mistaken, RelationType::ShareholderOrController, &school)).await;

    // Edition 1's look-back is 3 years: the last day of the past employment plus 3 years.
    let on = conflicts(&registry, &school, date(2025, 6, 30), date(2025, 7, 3)).await;
    let left_reason = on.iter().find(|e| e.expert_id == left).expect("conflicted on the last day of the look-back");
    assert_eq!(left_reason.reasons[0].relation_id, past.id);
    assert_eq!(left_reason.reasons[0].path, ConflictPath::Direct as i32);
    assert_eq!(left_reason.reasons[0].conflicted_until, date(2025, 6, 30));
    let after = conflicts(&registry, &school, date(2025, 7, 1), date(2025, 7, 3)).await;
    assert!(after.iter().all(|e| e.expert_id != left), "not after the look-back");
    assert!(after.iter().any(|e| e.expert_id == current), "an open employment conflicts");
    assert!(after.iter().find(|e| e.expert_id == current).unwrap().reasons[0].conflicted_until.is_none());

    // The error mark stops a conflict.
    let mut c = admin(&registry);
    let in_error = EndRelationRequest {
        request_id: id(),
        relation_id: error.id.clone(),
        end_date: None,
        recorded_in_error: true,
        reason: "误录".into(),
    };
    let marked = c.end_relation(in_error.clone()).await.unwrap().into_inner().relation.unwrap();
    assert!(marked.recorded_in_error);
    assert_eq!(c.end_relation(in_error).await.unwrap().into_inner().relation.unwrap(), marked, "a retry");
    let now = conflicts(&registry, &school, date(2026, 1, 5), date(2026, 1, 5)).await;
    assert!(now.iter().all(|e| e.expert_id != mistaken), "a relation in error makes no conflict");
    let kept = c
        .list_relations(ListRelationsRequest { expert_id: mistaken.clone(), include_ended: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.relations, [marked], "nothing is deleted");

    // Ending the current employment starts its look-back.
    let ended = c
        .end_relation(EndRelationRequest {
            request_id: id(),
            relation_id: employed.id.clone(),
            end_date: date(2023, 3, 31),
            recorded_in_error: false,
            reason: "离职".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .relation
        .unwrap();
    assert_eq!(ended.valid.unwrap().end, date(2023, 3, 31));
    assert_eq!(ended.end_reason, "离职");
    let later = conflicts(&registry, &school, date(2026, 3, 31), date(2026, 3, 31)).await;
    let direct = ConflictPath::Direct as i32;
    assert_eq!(
        reasons(&later),
        [(current.clone(), RelationType::CurrentEmployment as i32, direct, employed.id.clone())]
    );
    assert_eq!(later[0].reasons[0].conflicted_until, date(2026, 3, 31));
    assert!(conflicts(&registry, &school, date(2026, 4, 1), date(2026, 4, 1)).await.is_empty());

    // Ending twice is refused; an unknown relation is not found.
    let again = EndRelationRequest {
        request_id: id(),
        relation_id: employed.id.clone(),
        end_date: date(2026, 4, 30),
        recorded_in_error: false,
        reason: "再次".into(),
    };
    let err = c.end_relation(again).await.unwrap_err();
    assert_eq!((err.code(), reason_of(&err).as_str()), (Code::FailedPrecondition, "RELATION_ALREADY_ENDED"));
    let unknown = EndRelationRequest {
        request_id: id(),
        relation_id: "rel_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
        end_date: date(2026, 4, 30),
        recorded_in_error: false,
        reason: "x".into(),
    };
    assert_eq!(c.end_relation(unknown).await.unwrap_err().code(), Code::NotFound);
    registry.stop().await;
}

async fn the_parent_institutions_relations_count_for_a_sub_unit(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let parent = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let studio = institution(&registry, sub_unit(&parent, "江门市技师学院烹饪工作室")).await;
    let elsewhere = institution(&registry, legal_entity(OTHER_CODE, "江门市其他学校")).await;
    let (a, b, c_, d) = (
        appointed(&registry, "李明", ID_A).await,
        appointed(&registry, "王芳", ID_B).await,
        appointed(&registry, "张伟", ID_C).await,
        appointed(&registry, "赵敏", ID_D).await,
    );
    let with_parent = record(&registry, by_bureau(&a, RelationType::DirectorOrSupervisor, &parent)).await;
    let with_studio = record(&registry, by_bureau(&b, RelationType::PaidService, &studio)).await;
    // Named by the parent's credit code only (not registered when recorded).
    let mut by_code = by_bureau(&c_, RelationType::ShareholderOrController, "");
    by_code.organisation = Some(Organisation {
        name: "江门市技师学院".into(),
        credit_code: PARENT_CODE.into(),
        institution_id: String::new(),
    });
    let by_code = record(&registry, by_code).await;
    record(&registry, by_bureau(&d, RelationType::PaidService, &elsewhere)).await;

    let day = date(2026, 1, 5);
    let for_studio = conflicts(&registry, &studio, day, day).await;
    let mut expected = vec![
        (a.clone(), RelationType::DirectorOrSupervisor as i32, ConflictPath::Parent as i32, with_parent.id.clone()),
        (b.clone(), RelationType::PaidService as i32, ConflictPath::Direct as i32, with_studio.id.clone()),
        (c_.clone(), RelationType::ShareholderOrController as i32, ConflictPath::Parent as i32, by_code.id.clone()),
    ];
    expected.sort();
    assert_eq!(reasons(&for_studio), expected, "D20: the parent's relations count for its sub-unit");
    let for_parent = conflicts(&registry, &parent, day, day).await;
    let paths: Vec<(String, i32)> = reasons(&for_parent).into_iter().map(|(e, _, p, _)| (e, p)).collect();
    let mut want = vec![
        (a.clone(), ConflictPath::Direct as i32),
        (b.clone(), ConflictPath::SubUnit as i32),
        (c_.clone(), ConflictPath::Direct as i32),
    ];
    want.sort();
    assert_eq!(paths, want, "and the sub-unit's for its parent");
    let for_other = conflicts(&registry, &elsewhere, day, day).await;
    assert_eq!(for_other.iter().map(|e| e.expert_id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&d));

    // Only the experts asked about; pages in id order.
    let mut op = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(testkit::Bureau::Pengjiang)));
    let only = op
        .query_conflicts(QueryConflictsRequest {
            institution_id: studio.clone(),
            dates: range(day, day),
            expert_ids: vec![b.clone(), d.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only.experts.iter().map(|e| e.expert_id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&b));
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = op
            .query_conflicts(QueryConflictsRequest {
                page: Some(supervision_proto::common::PageRequest { page_size: 1, page_token: token.clone() }),
                institution_id: studio.clone(),
                dates: range(day, day),
                expert_ids: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.experts.into_iter().map(|e| e.expert_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, for_studio.iter().map(|e| e.expert_id.clone()).collect::<Vec<_>>());
    let err = op
        .query_conflicts(QueryConflictsRequest {
            institution_id: "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            dates: range(day, day),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err =
        op.query_conflicts(QueryConflictsRequest { institution_id: studio, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["dates"]);
    registry.stop().await;
}

async fn the_employer_and_the_represented_unit_count_without_a_relation(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let parent = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let studio = institution(&registry, sub_unit(&parent, "江门市技师学院烹饪工作室")).await;

    // Employed by the parent (by credit code).
    let mut employed = appoint_request("李明", ID_A, date(2025, 12, 1));
    let employer = employed.profile.as_mut().unwrap().employer.as_mut().unwrap();
    employer.organisation = Some(Organisation {
        name: "江门市技师学院".into(),
        credit_code: PARENT_CODE.into(),
        institution_id: String::new(),
    });
    let employed = appoint(&registry, employed).await.expert.unwrap().id;
    // Representing the studio (by institution id, D19).
    let mut representative = appoint_request("王芳", ID_B, date(2025, 12, 1));
    let p = representative.profile.as_mut().unwrap();
    p.kind = ExpertKind::UnitRepresentative as i32;
    p.represented_unit = Some(Organisation {
        name: "江门市技师学院烹饪工作室".into(),
        credit_code: String::new(),
        institution_id: studio.clone(),
    });
    let representative = appoint(&registry, representative).await.expert.unwrap().id;
    // Employed elsewhere: no conflict.
    appointed(&registry, "张伟", ID_C).await;

    let day = date(2026, 1, 5);
    let mut expected = vec![
        (employed.clone(), RelationType::CurrentEmployment as i32, ConflictPath::Employer as i32, String::new()),
        (
            representative.clone(),
            RelationType::RepresentedUnit as i32,
            ConflictPath::RepresentedUnit as i32,
            String::new(),
        ),
    ];
    expected.sort();
    assert_eq!(reasons(&conflicts(&registry, &studio, day, day).await), expected);
    assert_eq!(reasons(&conflicts(&registry, &parent, day, day).await), expected, "the family is the same");
    let r = &conflicts(&registry, &studio, day, day).await[0].reasons[0];
    assert!(r.conflicted_until.is_none(), "open-ended while the profile says so");
    registry.stop().await;
}

fn recusal(assignment: &str, expert: &str, institution: &str) -> RecordConflictRequest {
    RecordConflictRequest {
        request_id: assignment.into(),
        assignment_id: assignment.into(),
        task_id: format!("tsk_{}", id()),
        expert_id: expert.into(),
        institution_id: institution.into(),
        relation_type: RelationType::Relative as i32,
        detail: "评价机构负责人是我的表哥".into(),
        declared_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
    }
}

async fn a_recusal_is_recorded_once_per_assignment(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let school = institution(&registry, legal_entity(PARENT_CODE, "江门市技师学院")).await;
    let expert = appointed(&registry, "李明", ID_A).await;
    let mut dispatch =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityOperator, None));
    let req = recusal(&format!("asg_{}", id()), &expert, &school);
    let first = dispatch.record_conflict(req.clone()).await.unwrap().into_inner().relation.unwrap();
    assert_eq!(first.source, RelationSource::Recusal as i32);
    assert_eq!(first.source_ref, req.assignment_id);
    assert_eq!(first.r#type, RelationType::Relative as i32);
    assert_eq!(first.recorded_by.as_ref().unwrap().role, PbRole::CityOperator as i32, "the acting user");
    let again = dispatch.record_conflict(req.clone()).await.unwrap().into_inner().relation.unwrap();
    assert_eq!(again, first, "idempotent on the assignment id");
    let mut other = req.clone();
    other.detail = "另一说法".into();
    assert_eq!(dispatch.record_conflict(other).await.unwrap_err().code(), Code::FailedPrecondition);
    let mut unkeyed = recusal(&format!("asg_{}", id()), &expert, &school);
    unkeyed.request_id = id();
    assert_eq!(violated_fields(&dispatch.record_conflict(unkeyed).await.unwrap_err()), ["request_id"]);

    let listed = admin(&registry)
        .list_relations(ListRelationsRequest { expert_id: expert.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.relations, std::slice::from_ref(&first), "one relation for the assignment");
    let day = date(2026, 1, 5);
    assert_eq!(
        reasons(&conflicts(&registry, &school, day, day).await),
        [(expert.clone(), RelationType::Relative as i32, ConflictPath::Direct as i32, first.id.clone())]
    );

    // Only dispatch records recusals (docs/rpc-roles.md).
    let err = admin(&registry).record_conflict(recusal(&format!("asg_{}", id()), &expert, &school)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    registry.stop().await;
}
