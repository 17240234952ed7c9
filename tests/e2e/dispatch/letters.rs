//! Dispatch letters (D21) and sealed rosters (article 9(三), D12): a letter is issued when the
//! expert accepts, numbered after the task, with an 8-character code; VerifyDispatchLetter
//! answers only valid or not, with the institution and the dates; a cancelled assignment's letter
//! stops verifying; staff reads of a roster before the task's first session day are audited, an
//! expert's read of their own assignment and reads once the task has started are not.

use supervision_proto::{
    common::{Date, FileFormat},
    dispatch::{
        CancelAssignmentRequest, DispatchLetterStatus, GetAssignmentRequest, GetDispatchLetterRequest, GetTaskRequest,
        ListAssignmentsRequest, VerifyDispatchLetterRequest, dispatch_service_client::DispatchServiceClient,
        get_dispatch_letter_request::Selector,
    },
};
use testkit::{Backend, Bureau, Role, RunningService, on_both_backends};
use tonic::Code;

use crate::{
    draws::user,
    responses::{accept, clock_at, drawn, expert},
    tasks::reason,
};

on_both_backends!(
    an_accepted_assignment_gets_a_letter_the_institution_can_verify,
    sealed_roster_reads_by_staff_are_audited,
    concurrent_accepts_on_one_task_get_distinct_letter_numbers,
    concurrent_sealed_roster_reads_are_each_answered_and_audited,
);

fn by_assignment(id: &str, format: FileFormat) -> GetDispatchLetterRequest {
    GetDispatchLetterRequest { selector: Some(Selector::AssignmentId(id.into())), format: format as i32 }
}

/// Audit entries of dispatch with `action`.
async fn audited(dispatch: &RunningService, action: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(dispatch.database_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn an_accepted_assignment_gets_a_letter_the_institution_can_verify(backend: Backend) {
    let d = drawn(backend).await;
    let mut operator = user(&d.dispatch, "operator-a");
    let (holder, other) = (&d.primaries[0], &d.primaries[1]);
    let mut holder_client = expert(&d.dispatch, &holder.expert_id);
    holder_client.respond_to_assignment(accept("acc", &holder.id)).await.unwrap();

    let got = holder_client.get_dispatch_letter(by_assignment(&holder.id, FileFormat::Unspecified)).await.unwrap();
    let got = got.into_inner();
    assert!(got.file.is_none());
    let letter = got.letter.unwrap();
    let task = operator.get_task(GetTaskRequest { id: d.task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(letter.letter_number, format!("{}-01", task.task_number));
    assert_eq!(letter.verification_code.len(), 8);
    assert_eq!(letter.status, DispatchLetterStatus::Valid as i32);
    assert_eq!(letter.session_dates, [Date { year: 2026, month: 6, day: 8 }]);
    assert!(letter.id.starts_with("ltr_"));
    // The bureau reads the same letter, by its id too, and may render it.
    let by_id = GetDispatchLetterRequest {
        selector: Some(Selector::LetterId(letter.id.clone())),
        format: FileFormat::Html as i32,
    };
    let rendered = operator.get_dispatch_letter(by_id).await.unwrap().into_inner();
    assert_eq!(rendered.letter.as_ref(), Some(&letter));
    let html = String::from_utf8(rendered.file.unwrap().content).unwrap();
    assert!(html.contains(&letter.letter_number) && html.contains(&letter.verification_code));
    let pdf = by_assignment(&holder.id, FileFormat::Xlsx);
    assert_eq!(operator.get_dispatch_letter(pdf).await.unwrap_err().code(), Code::InvalidArgument);

    // Another expert does not see it; an assignment not accepted has none.
    let err = expert(&d.dispatch, &other.expert_id)
        .get_dispatch_letter(by_assignment(&holder.id, FileFormat::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = operator.get_dispatch_letter(by_assignment(&other.id, FileFormat::Unspecified)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "NO_LETTER"));

    // Staff of any county check it for an institution: only valid, where and when.
    let mut checker =
        DispatchServiceClient::new(d.dispatch.as_user("xinhui-op", Role::CountyOperator, Some(Bureau::Xinhui)));
    let check = |code: &str| VerifyDispatchLetterRequest {
        letter_number: letter.letter_number.clone(),
        verification_code: code.into(),
    };
    let verdict = checker.verify_dispatch_letter(check(&letter.verification_code)).await.unwrap().into_inner();
    assert!(verdict.valid);
    assert_eq!(verdict.institution_name, "蓬江职业培训学校");
    assert_eq!(verdict.session_dates, [Date { year: 2026, month: 6, day: 8 }]);
    let everything = format!("{verdict:?}");
    assert!(
        !everything.contains(&holder.expert_id)
            && !everything.contains(&other.expert_id)
            && !everything.contains("asg_")
    );
    let wrong = if letter.verification_code.starts_with('A') { "BBBBBBBB" } else { "AAAAAAAA" };
    assert_eq!(checker.verify_dispatch_letter(check(wrong)).await.unwrap().into_inner(), Default::default());
    let unknown = VerifyDispatchLetterRequest {
        letter_number: "440703-2026-9999-01".into(),
        verification_code: letter.verification_code.clone(),
    };
    assert!(!checker.verify_dispatch_letter(unknown).await.unwrap().into_inner().valid);
    let malformed = check("12");
    assert_eq!(checker.verify_dispatch_letter(malformed).await.unwrap_err().code(), Code::InvalidArgument);

    // Cancelled: the letter reads as revoked and no longer verifies.
    let cancel = CancelAssignmentRequest {
        request_id: "cancel-holder".into(),
        assignment_id: holder.id.clone(),
        reason: "专家因病".into(),
    };
    operator.cancel_assignment(cancel).await.unwrap();
    let revoked = holder_client.get_dispatch_letter(by_assignment(&holder.id, FileFormat::Unspecified)).await.unwrap();
    let revoked = revoked.into_inner().letter.unwrap();
    assert_eq!(revoked.status, DispatchLetterStatus::Revoked as i32);
    assert_eq!(revoked.revoke_reason, "assignment CANCELLED");
    assert!(!checker.verify_dispatch_letter(check(&letter.verification_code)).await.unwrap().into_inner().valid);
}

async fn concurrent_accepts_on_one_task_get_distinct_letter_numbers(backend: Backend) {
    let d = drawn(backend).await;
    let (a, b) = (&d.primaries[0], &d.primaries[1]);
    let mut a_client = expert(&d.dispatch, &a.expert_id);
    let mut b_client = expert(&d.dispatch, &b.expert_id);
    // Both accept at once: each gets a letter, and the two numbers differ.
    let (ra, rb) = tokio::join!(
        a_client.respond_to_assignment(accept("acc-a", &a.id)),
        b_client.respond_to_assignment(accept("acc-b", &b.id)),
    );
    ra.unwrap();
    rb.unwrap();
    let number = |r: tonic::Response<supervision_proto::dispatch::GetDispatchLetterResponse>| {
        r.into_inner().letter.unwrap().letter_number
    };
    let na = number(a_client.get_dispatch_letter(by_assignment(&a.id, FileFormat::Unspecified)).await.unwrap());
    let nb = number(b_client.get_dispatch_letter(by_assignment(&b.id, FileFormat::Unspecified)).await.unwrap());
    let task = user(&d.dispatch, "operator-a")
        .get_task(GetTaskRequest { id: d.task_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut numbers = vec![na, nb];
    numbers.sort();
    assert_eq!(numbers, [format!("{}-01", task.task_number), format!("{}-02", task.task_number)]);
}

async fn sealed_roster_reads_by_staff_are_audited(backend: Backend) {
    let d = drawn(backend).await;
    let mut operator = user(&d.dispatch, "operator-a");
    let list = || ListAssignmentsRequest { task_id: d.task_id.clone(), ..Default::default() };
    assert_eq!(audited(&d.dispatch, "read_sealed_roster").await, 0);
    operator.list_assignments(list()).await.unwrap();
    assert_eq!(audited(&d.dispatch, "read_sealed_roster").await, 1);
    operator.get_assignment(GetAssignmentRequest { id: d.primaries[0].id.clone() }).await.unwrap();
    assert_eq!(audited(&d.dispatch, "read_sealed_roster").await, 2);
    // Another county sees nothing of it, and nothing is audited for it.
    let mut other =
        DispatchServiceClient::new(d.dispatch.as_user("xinhui-op", Role::CountyOperator, Some(Bureau::Xinhui)));
    assert!(other.list_assignments(list()).await.unwrap().into_inner().assignments.is_empty());
    let err = other.get_assignment(GetAssignmentRequest { id: d.primaries[0].id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // An expert reads their own assignment: not a roster read.
    let own = &d.primaries[0];
    expert(&d.dispatch, &own.expert_id).get_assignment(GetAssignmentRequest { id: own.id.clone() }).await.unwrap();
    assert_eq!(audited(&d.dispatch, "read_sealed_roster").await, 2);
    // On the session's day the roster is no longer sealed.
    clock_at(&d.dispatch, (2026, 6, 8, 0, 30));
    operator.list_assignments(list()).await.unwrap();
    assert_eq!(audited(&d.dispatch, "read_sealed_roster").await, 2);
}

/// Staff reads of a sealed roster each append an audit entry. Many at once (each a read and then
/// a write) are all answered: on SQLite the audit write used to run in a deferred transaction,
/// and a reader whose snapshot another read's entry had overtaken failed with SQLITE_BUSY
/// (UNAVAILABLE "the database is busy").
async fn concurrent_sealed_roster_reads_are_each_answered_and_audited(backend: Backend) {
    let d = drawn(backend).await;
    let before = audited(&d.dispatch, "read_sealed_roster").await;
    const READERS: usize = 6;
    const ROUNDS: usize = 5;
    for _ in 0..ROUNDS {
        let mut reads = tokio::task::JoinSet::new();
        for n in 0..READERS {
            let mut staff = user(&d.dispatch, &format!("operator-{n}"));
            let task_id = d.task_id.clone();
            reads.spawn(async move {
                staff.list_assignments(ListAssignmentsRequest { task_id, ..Default::default() }).await
            });
        }
        for answer in reads.join_all().await {
            let roster = answer.expect("every sealed read is answered").into_inner().assignments;
            assert_eq!(roster.len(), d.primaries.len() + d.backups.len());
        }
    }
    let after = audited(&d.dispatch, "read_sealed_roster").await;
    assert_eq!(after - before, i64::try_from(READERS * ROUNDS).unwrap(), "one entry per read");
}
