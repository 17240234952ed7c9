//! Payment batches (issue 8 item 3; D9, D12) over gRPC, with fee lines written through
//! RecordSessions as dispatch writes them: draft -> submitted -> approved by a FINANCE user other
//! than the preparer -> paid; the second approval above the edition's threshold; withholding across
//! two batches of one month (docs/fees-and-tax.md section 6); rejected and cancelled batches open
//! their lines again; concurrent drafts never share a line; bureaus are kept apart; retries.

use std::collections::BTreeSet;

use supervision_proto::{
    common::{BureauCode, Date, DateRange, FundSource, YearMonth},
    finance::{
        ApprovalLevel, ApprovePaymentBatchRequest, CancelPaymentBatchRequest, CreatePaymentBatchRequest, FeeLineStatus,
        GetFeeLineRequest, GetMonthlyStatementRequest, GetPaymentBatchRequest, ListAuditEntriesRequest,
        ListFeeLinesRequest, ListMonthlyStatementsRequest, ListPaymentBatchesRequest, MarkPaymentBatchPaidRequest,
        PaymentBatch, PaymentBatchStatus, RejectPaymentBatchRequest, SubmitPaymentBatchRequest,
        finance_service_client::FinanceServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, identity::expert_token, on_both_backends,
    spawn_finance_with_registry, with_token,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::fees::{Assignment, create_expert, record};

on_both_backends!(
    a_batch_is_drafted_submitted_approved_by_another_finance_user_and_paid,
    above_the_threshold_a_second_approval_by_finance_lead_or_city_admin_is_needed,
    a_second_batch_of_the_month_withholds_the_difference,
    rejecting_or_cancelling_a_batch_opens_its_lines_again,
    concurrent_drafts_never_take_the_same_line,
    another_bureaus_finance_user_is_refused,
    the_same_request_id_twice_has_one_effect,
);

type Client = FinanceServiceClient<AuthedChannel>;

fn user(finance: &RunningService, subject: &str, role: Role, bureau: Option<Bureau>) -> Client {
    FinanceServiceClient::new(finance.as_user(subject, role, bureau))
}

/// The preparer and the approver: two FINANCE users of Xinhui.
fn preparer(finance: &RunningService) -> Client {
    user(finance, "fin-preparer", Role::Finance, Some(Bureau::Xinhui))
}

fn approver(finance: &RunningService) -> Client {
    user(finance, "fin-approver", Role::Finance, Some(Bureau::Xinhui))
}

const APRIL: YearMonth = YearMonth { year: 2026, month: 4 };

fn draft(request_id: &str, fund: FundSource) -> CreatePaymentBatchRequest {
    CreatePaymentBatchRequest {
        request_id: request_id.into(),
        paying_bureau: BureauCode::Xinhui as i32,
        payment_month: Some(APRIL),
        fund_source: fund as i32,
        work_dates: None,
    }
}

async fn create(client: &mut Client, request: CreatePaymentBatchRequest) -> Result<PaymentBatch, Status> {
    client.create_payment_batch(request).await.map(|r| r.into_inner().batch.unwrap())
}

async fn submit(client: &mut Client, request_id: &str, batch: &str) -> Result<PaymentBatch, Status> {
    let request = SubmitPaymentBatchRequest { request_id: request_id.into(), batch_id: batch.into() };
    client.submit_payment_batch(request).await.map(|r| r.into_inner().batch.unwrap())
}

async fn approve(client: &mut Client, request_id: &str, batch: &str) -> Result<PaymentBatch, Status> {
    let request =
        ApprovePaymentBatchRequest {
            request_id: request_id.into(), batch_id: batch.into(), note: "核对无误".into()
        };
    client.approve_payment_batch(request).await.map(|r| r.into_inner().batch.unwrap())
}

async fn pay(client: &mut Client, request_id: &str, batch: &str) -> Result<PaymentBatch, Status> {
    let request = MarkPaymentBatchPaidRequest {
        request_id: request_id.into(),
        batch_id: batch.into(),
        bank_reference: "ICBC-20260505-0001".into(),
        paid_date: Some(Date { year: 2026, month: 5, day: 5 }),
    };
    client.mark_payment_batch_paid(request).await.map(|r| r.into_inner().batch.unwrap())
}

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn fen(m: Option<supervision_proto::common::Money>) -> i64 {
    m.unwrap().fen
}

fn line_ids(batch: &PaymentBatch) -> BTreeSet<String> {
    batch.items.iter().flat_map(|i| i.fee_line_ids.iter().cloned()).collect()
}

/// Every line of the expert in `status`, as CITY_ADMIN lists them.
async fn lines_in(finance: &RunningService, status: FeeLineStatus) -> BTreeSet<String> {
    let mut admin = FinanceServiceClient::new(finance.as_role(Role::CityAdmin, None));
    let request = ListFeeLinesRequest { status: status as i32, ..Default::default() };
    admin.list_fee_lines(request).await.unwrap().into_inner().lines.into_iter().map(|l| l.id).collect()
}

/// Full half-days (180 minutes, 4 class hours, 400 yuan) on April `days`, morning and afternoon.
fn full_days(days: std::ops::RangeInclusive<i32>) -> Vec<(i32, i32, i32, i32)> {
    days.flat_map(|d| [(d, 8, 30, 180), (d, 14, 0, 180)]).collect()
}

async fn a_batch_is_drafted_submitted_approved_by_another_finance_user_and_paid(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // 300 + 400 yuan from Xinhui's city/county fund; lines of the other fund and of another
    // bureau stay out of the batch.
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let charged = record(&finance, a.revision(1, &[(1, 9, 0, 165), (2, 8, 30, 210)])).await;
    let other_fund = Assignment::new(&expert, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    record(&finance, other_fund.revision(1, &[(3, 9, 0, 90)])).await;
    let other_bureau = Assignment::new(&expert, BureauCode::Heshan, FundSource::CityCountyEmployment);
    record(&finance, other_bureau.revision(1, &[(4, 9, 0, 90)])).await;
    // A line after the payment month is not taken either.
    let may = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let mut may_request = may.revision(1, &[(1, 9, 0, 90)]);
    may_request.sessions[0].date = Some(Date { year: 2026, month: 5, day: 4 });
    record(&finance, may_request).await;

    let mut prep = preparer(&finance);
    let batch = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    assert!(batch.id.starts_with("bat_"));
    assert_eq!(batch.status(), PaymentBatchStatus::Draft);
    assert_eq!((batch.paying_bureau(), batch.fund_source()), (BureauCode::Xinhui, FundSource::CityCountyEmployment));
    assert_eq!(batch.prepared_by.as_ref().unwrap().subject, "fin-preparer");
    let expected: BTreeSet<String> = charged.lines.iter().map(|l| l.id.clone()).collect();
    assert_eq!(line_ids(&batch), expected);
    assert_eq!(batch.items.len(), 1);
    assert_eq!(batch.items[0].expert_id, expert);
    // 700 yuan: (700 - 800) is below zero, nothing withheld.
    assert_eq!((fen(batch.total_gross), fen(batch.total_tax), fen(batch.total_net)), (70_000, 0, 70_000));
    assert!(!batch.requires_second_approval);
    assert_eq!(lines_in(&finance, FeeLineStatus::InBatch).await, expected);

    // A draft cannot be approved, and the state is named.
    let refused = approve(&mut approver(&finance), "approve-early", &batch.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("DRAFT"), "{}", refused.message());

    let submitted = submit(&mut prep, "submit-1", &batch.id).await.unwrap();
    assert_eq!(submitted.status(), PaymentBatchStatus::Submitted);
    assert!(submitted.submit_time.is_some());

    // The preparer may not approve their own batch.
    let refused = approve(&mut prep, "approve-own", &batch.id).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::PermissionDenied, "PREPARER_CANNOT_APPROVE"));

    let approved = approve(&mut approver(&finance), "approve-1", &batch.id).await.unwrap();
    assert_eq!(approved.status(), PaymentBatchStatus::Approved);
    assert_eq!(approved.approvals.len(), 1);
    assert_eq!(approved.approvals[0].approver.as_ref().unwrap().subject, "fin-approver");

    let paid = pay(&mut prep, "pay-1", &batch.id).await.unwrap();
    assert_eq!(paid.status(), PaymentBatchStatus::Paid);
    assert_eq!(paid.bank_reference, "ICBC-20260505-0001");
    assert_eq!(paid.paid_date, Some(Date { year: 2026, month: 5, day: 5 }));
    assert_eq!(lines_in(&finance, FeeLineStatus::Paid).await, expected);
    let refused = pay(&mut prep, "pay-again", &batch.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("PAID"), "{}", refused.message());

    // A later correction never changes a paid line: its reversal is a new, open line.
    let corrected = record(&finance, a.revision(2, &[(1, 9, 0, 180), (2, 8, 30, 210)])).await;
    assert!(corrected.lines.iter().all(|l| l.status() == FeeLineStatus::Open));
    let mut admin = FinanceServiceClient::new(finance.as_role(Role::CityAdmin, None));
    for id in &expected {
        let line = admin.get_fee_line(GetFeeLineRequest { id: id.clone() }).await.unwrap().into_inner().line.unwrap();
        assert_eq!((line.status(), line.payment_batch_id.as_str()), (FeeLineStatus::Paid, batch.id.as_str()));
    }

    // One audit entry per write.
    let mut auditor = FinanceServiceClient::new(finance.as_role(Role::Auditor, None));
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "payment_batch".into(),
            entity_id: batch.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["create_payment_batch", "submit_payment_batch", "approve_payment_batch", "mark_payment_batch_paid"]
    );
    finance.stop().await;
    registry.stop().await;
}

async fn above_the_threshold_a_second_approval_by_finance_lead_or_city_admin_is_needed(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // 13 full days: 26 x 400 = 10,400 yuan, above edition 1's 10,000.
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &full_days(1..=13))).await;
    let b = Assignment::new(&expert, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    record(&finance, b.revision(1, &full_days(14..=26))).await;

    let mut prep = preparer(&finance);
    let batch = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    assert_eq!(fen(batch.total_gross), 1_040_000);
    // 10,400 x 80% x 20% = 1,664 yuan.
    assert_eq!((fen(batch.total_tax), fen(batch.total_net)), (166_400, 873_600));
    assert!(batch.requires_second_approval);
    submit(&mut prep, "submit-1", &batch.id).await.unwrap();

    let first = approve(&mut approver(&finance), "approve-1", &batch.id).await.unwrap();
    assert_eq!((first.status(), first.approvals.len()), (PaymentBatchStatus::Submitted, 1));
    // Another FINANCE user cannot give the second approval, nor the first approver.
    let other = user(&finance, "fin-third", Role::Finance, Some(Bureau::Xinhui));
    let refused = approve(&mut other.clone(), "approve-2", &batch.id).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "APPROVAL_ALREADY_GIVEN"));
    let same = user(&finance, "fin-approver", Role::FinanceLead, Some(Bureau::Xinhui));
    let refused = approve(&mut same.clone(), "approve-3", &batch.id).await.unwrap_err();
    assert_eq!(reason(&refused), "ALREADY_APPROVED_BY_CALLER");
    // Another bureau's FINANCE_LEAD is refused.
    let elsewhere = user(&finance, "lead-heshan", Role::FinanceLead, Some(Bureau::Heshan));
    let refused = approve(&mut elsewhere.clone(), "approve-4", &batch.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The bureau's FINANCE_LEAD gives the second approval.
    let lead = user(&finance, "lead-xinhui", Role::FinanceLead, Some(Bureau::Xinhui));
    let approved = approve(&mut lead.clone(), "approve-5", &batch.id).await.unwrap();
    assert_eq!(approved.status(), PaymentBatchStatus::Approved);
    let levels: Vec<_> = approved.approvals.iter().map(|a| a.level()).collect();
    assert_eq!(levels, [ApprovalLevel::Finance, ApprovalLevel::Second]);

    // The other fund's batch: CITY_ADMIN gives the second approval. Its withholding is on the
    // month's cumulative 20,800 yuan, net of the 1,664 already withheld.
    let batch = create(&mut prep, draft("create-2", FundSource::ProvincialSkillTraining)).await.unwrap();
    submit(&mut prep, "submit-2", &batch.id).await.unwrap();
    let mut admin = user(&finance, "city-admin", Role::CityAdmin, None);
    let second = approve(&mut admin, "approve-6", &batch.id).await.unwrap();
    assert_eq!((second.status(), second.approvals[0].level()), (PaymentBatchStatus::Submitted, ApprovalLevel::Second));
    let approved = approve(&mut approver(&finance), "approve-7", &batch.id).await.unwrap();
    assert_eq!(approved.status(), PaymentBatchStatus::Approved);
    // 20,800 x 80% = 16,640 x 20% = 3,328 due, 1,664 already withheld: 1,664 now.
    let w = approved.items[0].withholding.unwrap();
    assert_eq!((fen(w.income), fen(w.tax_due), fen(w.already_withheld)), (2_080_000, 332_800, 166_400));
    assert_eq!(fen(approved.total_tax), 166_400);
    finance.stop().await;
    registry.stop().await;
}

async fn a_second_batch_of_the_month_withholds_the_difference(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // 3,000 yuan from the city/county fund: three full days, a morning and a two-hour afternoon.
    let mut sessions = full_days(1..=3);
    sessions.extend([(4, 8, 30, 180), (4, 14, 0, 90)]);
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &sessions)).await;
    // 2,000 yuan more from the provincial fund in the same month.
    let mut sessions = full_days(6..=7);
    sessions.push((8, 8, 30, 180));
    let b = Assignment::new(&expert, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    record(&finance, b.revision(1, &sessions)).await;

    let mut prep = preparer(&finance);
    let first = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    assert_eq!((fen(first.total_gross), fen(first.total_tax)), (300_000, 44_000));
    submit(&mut prep, "submit-1", &first.id).await.unwrap();
    approve(&mut approver(&finance), "approve-1", &first.id).await.unwrap();

    // 5,000 x 80% x 20% = 800 due, 440 already withheld: 360 now (not the 240 of 2,000 alone).
    let second = create(&mut prep, draft("create-2", FundSource::ProvincialSkillTraining)).await.unwrap();
    let w = second.items[0].withholding.unwrap();
    assert_eq!((fen(w.income), fen(w.tax_due), fen(w.already_withheld)), (500_000, 80_000, 44_000));
    assert_eq!((fen(second.total_gross), fen(second.total_tax), fen(second.total_net)), (200_000, 36_000, 164_000));
    submit(&mut prep, "submit-2", &second.id).await.unwrap();
    let approved = approve(&mut approver(&finance), "approve-2", &second.id).await.unwrap();
    assert_eq!(fen(approved.total_tax), 36_000, "fixed at approval against the month's approved batches");

    // The month's statement: both funds, both batches, one income for tax.
    let ask = GetMonthlyStatementRequest {
        expert_id: expert.clone(),
        paying_bureau: BureauCode::Xinhui as i32,
        payment_month: Some(APRIL),
    };
    let statement = prep.get_monthly_statement(ask.clone()).await.unwrap().into_inner().statement.unwrap();
    assert_eq!((fen(statement.gross), fen(statement.tax), fen(statement.net)), (500_000, 80_000, 420_000));
    assert_eq!(statement.payment_batch_ids, [first.id.clone(), second.id.clone()]);
    assert_eq!(statement.lines.len(), 13);
    assert_eq!(statement.lines.iter().map(|l| l.amount.unwrap().fen).sum::<i64>(), 500_000);
    let w = statement.withholding.unwrap();
    assert_eq!((fen(w.tax_due), fen(w.withheld_now)), (80_000, 36_000));
    // The expert sees their own; another bureau's finance does not.
    let mut own = FinanceServiceClient::new(with_token(&finance.channel, Some(&expert_token(&expert))));
    assert_eq!(
        own.get_monthly_statement(ask.clone()).await.unwrap().into_inner().statement.unwrap().net,
        statement.net
    );
    let mut heshan = user(&finance, "fin-heshan", Role::Finance, Some(Bureau::Heshan));
    assert_eq!(heshan.get_monthly_statement(ask).await.unwrap_err().code(), Code::PermissionDenied);
    let listed =
        prep.list_monthly_statements(ListMonthlyStatementsRequest::default()).await.unwrap().into_inner().statements;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].lines.is_empty());
    assert_eq!(fen(listed[0].tax), 80_000);
    let none = heshan.list_monthly_statements(ListMonthlyStatementsRequest::default()).await.unwrap().into_inner();
    assert!(none.statements.is_empty());
    finance.stop().await;
    registry.stop().await;
}

async fn rejecting_or_cancelling_a_batch_opens_its_lines_again(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let charged = record(&finance, a.revision(1, &[(1, 9, 0, 165), (2, 8, 30, 210)])).await;
    let expected: BTreeSet<String> = charged.lines.iter().map(|l| l.id.clone()).collect();
    let mut prep = preparer(&finance);

    let first = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    // No other draft can take lines already in one.
    let refused = create(&mut prep, draft("create-x", FundSource::CityCountyEmployment)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "NO_OPEN_LINES"));
    let no_reason =
        CancelPaymentBatchRequest { request_id: "cancel-0".into(), batch_id: first.id.clone(), reason: " ".into() };
    assert_eq!(prep.cancel_payment_batch(no_reason).await.unwrap_err().code(), Code::InvalidArgument);
    let cancel = CancelPaymentBatchRequest {
        request_id: "cancel-1".into(),
        batch_id: first.id.clone(),
        reason: "金额有误".into(),
    };
    let cancelled = prep.cancel_payment_batch(cancel).await.unwrap().into_inner().batch.unwrap();
    assert_eq!((cancelled.status(), cancelled.close_reason.as_str()), (PaymentBatchStatus::Cancelled, "金额有误"));
    assert_eq!(cancelled.closed_by.unwrap().subject, "fin-preparer");
    assert_eq!(lines_in(&finance, FeeLineStatus::Open).await, expected);

    let second = create(&mut prep, draft("create-2", FundSource::CityCountyEmployment)).await.unwrap();
    assert_eq!(line_ids(&second), expected);
    submit(&mut prep, "submit-2", &second.id).await.unwrap();
    // A submitted batch is rejected, not cancelled.
    let cancel =
        CancelPaymentBatchRequest {
            request_id: "cancel-2".into(), batch_id: second.id.clone(), reason: "撤回".into()
        };
    let refused = prep.cancel_payment_batch(cancel).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("SUBMITTED"), "{}", refused.message());
    let reject = RejectPaymentBatchRequest {
        request_id: "reject-2".into(),
        batch_id: second.id.clone(),
        reason: "缺少签到记录".into(),
    };
    let rejected = approver(&finance).reject_payment_batch(reject).await.unwrap().into_inner().batch.unwrap();
    assert_eq!(rejected.status(), PaymentBatchStatus::Rejected);
    assert_eq!(lines_in(&finance, FeeLineStatus::Open).await, expected);
    // The rejected batch still shows what it held.
    assert_eq!(line_ids(&rejected), expected);

    let third = create(&mut prep, draft("create-3", FundSource::CityCountyEmployment)).await.unwrap();
    assert_eq!(line_ids(&third), expected);
    assert!(lines_in(&finance, FeeLineStatus::Open).await.is_empty());
    finance.stop().await;
    registry.stop().await;
}

async fn concurrent_drafts_never_take_the_same_line(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &full_days(1..=5))).await;
    let all = lines_in(&finance, FeeLineStatus::Open).await;
    assert_eq!(all.len(), 10);

    // Four drafts at once, with different work-date ranges that overlap.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut client = user(&finance, &format!("fin-{i}"), Role::Finance, Some(Bureau::Xinhui));
        let mut request = draft(&format!("create-{i}"), FundSource::CityCountyEmployment);
        request.work_dates = Some(DateRange {
            start: Some(Date { year: 2026, month: 4, day: 1 + i }),
            end: Some(Date { year: 2026, month: 4, day: 5 }),
        });
        tasks.push(tokio::spawn(async move { create(&mut client, request).await }));
    }
    let mut taken: Vec<String> = Vec::new();
    let mut batches = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(batch) => {
                taken.extend(line_ids(&batch));
                batches.push(batch);
            }
            Err(status) => assert!(
                matches!(status.code(), Code::FailedPrecondition | Code::Unavailable | Code::Aborted),
                "{status:?}"
            ),
        }
    }
    assert!(!batches.is_empty());
    let distinct: BTreeSet<String> = taken.iter().cloned().collect();
    assert_eq!(distinct.len(), taken.len(), "a line is in one batch only");
    // Each line taken names the one batch that lists it.
    let mut admin = FinanceServiceClient::new(finance.as_role(Role::CityAdmin, None));
    for batch in &batches {
        let request = ListFeeLinesRequest { payment_batch_id: batch.id.clone(), ..Default::default() };
        let held: BTreeSet<String> =
            admin.list_fee_lines(request).await.unwrap().into_inner().lines.into_iter().map(|l| l.id).collect();
        assert_eq!(held, line_ids(batch));
    }
    assert!(distinct.is_subset(&all));
    finance.stop().await;
    registry.stop().await;
}

async fn another_bureaus_finance_user_is_refused(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &[(1, 9, 0, 165)])).await;
    let mut heshan = user(&finance, "fin-heshan", Role::Finance, Some(Bureau::Heshan));

    let refused = create(&mut heshan, draft("create-h", FundSource::CityCountyEmployment)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut prep = preparer(&finance);
    let batch = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    submit(&mut prep, "submit-1", &batch.id).await.unwrap();

    let get = GetPaymentBatchRequest { id: batch.id.clone() };
    assert_eq!(heshan.get_payment_batch(get.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let refused = approve(&mut heshan, "approve-h", &batch.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = heshan.list_payment_batches(ListPaymentBatchesRequest::default()).await.unwrap().into_inner();
    assert!(listed.batches.is_empty());
    let naming = ListPaymentBatchesRequest { paying_bureau: BureauCode::Xinhui as i32, ..Default::default() };
    assert_eq!(heshan.list_payment_batches(naming.clone()).await.unwrap_err().code(), Code::PermissionDenied);

    // The bureau itself, the city and the auditors see it.
    assert_eq!(prep.list_payment_batches(naming).await.unwrap().into_inner().batches.len(), 1);
    let mut auditor = FinanceServiceClient::new(finance.as_role(Role::Auditor, None));
    let seen = auditor.get_payment_batch(get).await.unwrap().into_inner().batch.unwrap();
    assert_eq!(seen.status(), PaymentBatchStatus::Submitted);
    // An auditor changes nothing.
    assert_eq!(approve(&mut auditor, "approve-a", &batch.id).await.unwrap_err().code(), Code::PermissionDenied);
    finance.stop().await;
    registry.stop().await;
}

async fn the_same_request_id_twice_has_one_effect(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &[(1, 9, 0, 165)])).await;
    let mut prep = preparer(&finance);

    let once = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    let twice = create(&mut prep, draft("create-1", FundSource::CityCountyEmployment)).await.unwrap();
    assert_eq!(once, twice);
    let listed = prep.list_payment_batches(ListPaymentBatchesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.batches.len(), 1);

    submit(&mut prep, "submit-1", &once.id).await.unwrap();
    assert_eq!(submit(&mut prep, "submit-1", &once.id).await.unwrap().status(), PaymentBatchStatus::Submitted);
    let first = approve(&mut approver(&finance), "approve-1", &once.id).await.unwrap();
    let again = approve(&mut approver(&finance), "approve-1", &once.id).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(again.approvals.len(), 1);
    let paid = pay(&mut prep, "pay-1", &once.id).await.unwrap();
    assert_eq!(pay(&mut prep, "pay-1", &once.id).await.unwrap(), paid);

    let mut auditor = FinanceServiceClient::new(finance.as_role(Role::Auditor, None));
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "payment_batch".into(),
            entity_id: once.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 4, "create, submit, approve and pay once each");
    finance.stop().await;
    registry.stop().await;
}
