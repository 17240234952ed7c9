//! proto <-> domain. Every problem with a request becomes a field violation naming the field.

pub mod batches;
pub mod fee_lines;

use supervision_kit::{Bureau, Caller, FieldViolations, Page, convert::required_enum, convert::timestamp};
use supervision_proto::{common, finance as pb};
use tonic::Status;

use crate::domain::{
    BatchId, ExportFormat, ExportId, ExportKind, ExportRecord, FileEncoding, LedgerQuery, MonthRange, YearMonth,
};

/// The ledger a request asks for. A bureau-scoped caller (FINANCE, FINANCE_LEAD) who names no
/// bureau gets their own; naming another is refused.
pub fn ledger_request(req: &pb::ExportLedgerRequest, caller: &Caller) -> Result<(LedgerQuery, FileEncoding), Status> {
    let mut v = FieldViolations::new();
    let bureau = optional_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let fund = match req.fund_source {
        0 => None,
        value => {
            required_enum::<common::FundSource>(value, "fund_source", "one of the two funds of article 10", &mut v)
                .map(|f| f.as_str_name().to_owned())
        }
    };
    let from = month(req.from_month.as_ref(), "from_month", &mut v);
    let to = month(req.to_month.as_ref(), "to_month", &mut v);
    if let (Some(from), Some(to)) = (from, to) {
        let span = from.months_until(to);
        if span < 1 {
            v.add("to_month", "must not be before from_month");
        } else if span > MonthRange::MAX_MONTHS {
            v.add("to_month", format!("a ledger covers at most {} months", MonthRange::MAX_MONTHS));
        }
    }
    let encoding = csv_encoding(req.format, "format", &mut v);
    v.check()?;
    let bureau = match (bureau, caller.role.is_bureau_scoped()) {
        (Some(b), _) => {
            caller.require_bureau(b)?;
            Some(b)
        }
        (None, true) => caller.bureau,
        (None, false) => None,
    };
    let (Some(from), Some(to), Some(encoding)) = (from, to, encoding) else { unreachable!("recorded as violations") };
    Ok((LedgerQuery { bureau, fund, months: MonthRange { from, to } }, encoding))
}

/// The exports a listing asks for, limited to a scoped caller's own bureau.
pub fn export_listing(
    req: &pb::ListExportsRequest,
    caller: &Caller,
) -> Result<(Option<ExportKind>, Option<Bureau>, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| ExportId::parse(t).is_some(), &mut v);
    let kind = match req.kind {
        0 => None,
        value => required_enum::<pb::ExportKind>(value, "kind", "an export kind", &mut v).map(kind_from_proto),
    };
    let bureau = optional_bureau(req.paying_bureau, "paying_bureau", &mut v);
    v.check()?;
    let bureau = match (bureau, caller.role.is_bureau_scoped()) {
        (Some(b), _) => {
            caller.require_bureau(b)?;
            Some(b)
        }
        (None, true) => caller.bureau,
        (None, false) => None,
    };
    Ok((kind, bureau, page))
}

fn optional_bureau(value: i32, field: &str, v: &mut FieldViolations) -> Option<Bureau> {
    if value == 0 {
        return None;
    }
    let bureau = Bureau::from_proto(value);
    if bureau.is_none() {
        v.add(field, "is not a bureau code");
    }
    bureau
}

fn month(raw: Option<&common::YearMonth>, field: &str, v: &mut FieldViolations) -> Option<YearMonth> {
    let parsed = raw.and_then(|m| YearMonth::new(m.year, u32::try_from(m.month).ok()?));
    if parsed.is_none() {
        v.add(field, "must be a month (year 2000 to 2199, month 1 to 12)");
    }
    parsed
}

fn csv_encoding(value: i32, field: &str, v: &mut FieldViolations) -> Option<FileEncoding> {
    match common::FileFormat::try_from(value) {
        Ok(common::FileFormat::CsvUtf8) => Some(FileEncoding::Utf8),
        Ok(common::FileFormat::CsvGb18030) => Some(FileEncoding::Gb18030),
        _ => {
            v.add(field, "the ledger is written as FILE_FORMAT_CSV_UTF8 or FILE_FORMAT_CSV_GB18030");
            None
        }
    }
}

fn kind_from_proto(k: pb::ExportKind) -> ExportKind {
    match k {
        pb::ExportKind::Unspecified | pb::ExportKind::Ledger => ExportKind::Ledger,
        pb::ExportKind::BankPaymentFile => ExportKind::BankPaymentFile,
        pb::ExportKind::WithholdingReturn => ExportKind::WithholdingReturn,
        pb::ExportKind::YearlyStatement => ExportKind::YearlyStatement,
    }
}

fn kind_to_proto(k: ExportKind) -> pb::ExportKind {
    match k {
        ExportKind::Ledger => pb::ExportKind::Ledger,
        ExportKind::BankPaymentFile => pb::ExportKind::BankPaymentFile,
        ExportKind::WithholdingReturn => pb::ExportKind::WithholdingReturn,
        ExportKind::YearlyStatement => pb::ExportKind::YearlyStatement,
    }
}

pub fn export_to_proto(e: ExportRecord) -> pb::Export {
    let month = YearMonth::parse_key(&e.month)
        .map(|m| common::YearMonth { year: m.year, month: i32::try_from(m.month).unwrap_or_default() });
    pb::Export {
        id: e.id.to_string(),
        kind: kind_to_proto(e.kind) as i32,
        format: common::FileFormat::from_str_name(&e.format).map_or(0, |f| f as i32),
        payment_batch_id: e.payment_batch_id,
        paying_bureau: e.bureau.map_or(0, |b| b.to_proto() as i32),
        month,
        expert_id: e.expert_id,
        year: e.year,
        file_name: e.file_name,
        size_bytes: e.size_bytes,
        sha256: e.sha256,
        row_count: e.row_count,
        total: Some(common::Money { fen: e.total_fen }),
        created_by: Some(e.created_by.to_proto()),
        create_time: Some(timestamp(e.created_at)),
    }
}

/// CSV (UTF-8 or GB18030) or XLSX; `what` names the export in the violation.
fn export_format(value: i32, what: &str, v: &mut FieldViolations) -> Option<ExportFormat> {
    match common::FileFormat::try_from(value) {
        Ok(common::FileFormat::CsvUtf8) => Some(ExportFormat::Csv(FileEncoding::Utf8)),
        Ok(common::FileFormat::CsvGb18030) => Some(ExportFormat::Csv(FileEncoding::Gb18030)),
        Ok(common::FileFormat::Xlsx) => Some(ExportFormat::Xlsx),
        _ => {
            v.add(
                "format",
                format!("{what} is written as FILE_FORMAT_CSV_UTF8, FILE_FORMAT_CSV_GB18030 or FILE_FORMAT_XLSX"),
            );
            None
        }
    }
}

/// The bureau a request names, or a bureau-scoped caller's own when it names none; `None` for
/// a city role or auditor who names none. Naming another bureau than one's own is refused.
fn scoped_bureau(bureau: Option<Bureau>, caller: &Caller) -> Result<Option<Bureau>, Status> {
    match (bureau, caller.role.is_bureau_scoped()) {
        (Some(b), _) => {
            caller.require_bureau(b)?;
            Ok(Some(b))
        }
        (None, true) => Ok(caller.bureau),
        (None, false) => Ok(None),
    }
}

/// What ExportBankPaymentFile asks for.
pub fn bank_file_request(req: &pb::ExportBankPaymentFileRequest) -> Result<(BatchId, ExportFormat), Status> {
    let mut v = FieldViolations::new();
    let id = BatchId::parse(&req.batch_id);
    if id.is_none() {
        v.add("batch_id", "must be a payment batch id (bat_...)");
    }
    let format = export_format(req.format, "the bank file", &mut v);
    v.check()?;
    let (Some(id), Some(format)) = (id, format) else { unreachable!("recorded as violations") };
    Ok((id, format))
}

/// A required paying bureau, defaulting to a bureau-scoped caller's own.
fn required_scoped_bureau(value: i32, caller: &Caller, v: &mut FieldViolations) -> Option<Bureau> {
    let named = optional_bureau(value, "paying_bureau", v);
    if value == 0 && !caller.role.is_bureau_scoped() {
        v.add("paying_bureau", "must name the paying bureau");
    }
    named
}

/// What ExportWithholdingReturn asks for.
pub fn withholding_request(
    req: &pb::ExportWithholdingReturnRequest,
    caller: &Caller,
) -> Result<(Bureau, YearMonth, ExportFormat), Status> {
    let mut v = FieldViolations::new();
    let bureau = required_scoped_bureau(req.paying_bureau, caller, &mut v);
    let month = month(req.month.as_ref(), "month", &mut v);
    let format = export_format(req.format, "the withholding return", &mut v);
    v.check()?;
    let (Some(month), Some(format)) = (month, format) else { unreachable!("recorded as violations") };
    let Some(bureau) = scoped_bureau(bureau, caller)? else {
        return Err(supervision_kit::error::invalid_field("paying_bureau", "must name the paying bureau"));
    };
    Ok((bureau, month, format))
}

/// What ExportYearlyStatement asks for: the expert (an EXPERT caller: themself), the year, the
/// paying bureau (a FINANCE caller: their own) and the format.
pub fn yearly_request(
    req: &pb::ExportYearlyStatementRequest,
    caller: &Caller,
) -> Result<(String, Option<Bureau>, i32, ExportFormat), Status> {
    let mut v = FieldViolations::new();
    let own_by_default = req.expert_id.is_empty() && caller.role == supervision_kit::Role::Expert;
    if !own_by_default && !supervision_kit::vocab::is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    if !(2000..=2199).contains(&req.year) {
        v.add("year", "must be a year from 2000 to 2199");
    }
    let bureau = optional_bureau(req.paying_bureau, "paying_bureau", &mut v);
    let format = export_format(req.format, "the yearly statement", &mut v);
    v.check()?;
    let Some(format) = format else { unreachable!("recorded as a violation") };
    let named = (!req.expert_id.is_empty()).then(|| req.expert_id.clone());
    let expert = crate::statements::scope_expert(caller, named)?.unwrap_or_default();
    Ok((expert, scoped_bureau(bureau, caller)?, req.year, format))
}

/// What Reconcile asks for.
pub fn reconcile_request(req: &pb::ReconcileRequest, caller: &Caller) -> Result<(Bureau, YearMonth), Status> {
    let mut v = FieldViolations::new();
    let bureau = required_scoped_bureau(req.paying_bureau, caller, &mut v);
    let month = month(req.month.as_ref(), "month", &mut v);
    v.check()?;
    let Some(month) = month else { unreachable!("recorded as a violation") };
    let Some(bureau) = scoped_bureau(bureau, caller)? else {
        return Err(supervision_kit::error::invalid_field("paying_bureau", "must name the paying bureau"));
    };
    Ok((bureau, month))
}

pub fn reconciliation_to_proto(r: &crate::reconcile::Reconciliation) -> pb::ReconcileResponse {
    pb::ReconcileResponse {
        balanced: r.balanced(),
        checks: r
            .checks
            .iter()
            .map(|c| pb::ReconciliationCheck {
                name: c.name.clone(),
                expected: Some(common::Money { fen: c.expected_fen }),
                actual: Some(common::Money { fen: c.actual_fen }),
                ok: c.ok(),
                detail: c.detail(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervision_kit::Role;

    fn finance_of(b: Bureau) -> Caller {
        Caller { subject: "f".into(), role: Role::Finance, bureau: Some(b), expert_id: None, acting_for: None }
    }

    fn request() -> pb::ExportLedgerRequest {
        pb::ExportLedgerRequest {
            request_id: "r".into(),
            paying_bureau: 0,
            fund_source: 0,
            from_month: Some(common::YearMonth { year: 2026, month: 1 }),
            to_month: Some(common::YearMonth { year: 2026, month: 6 }),
            format: common::FileFormat::CsvGb18030 as i32,
        }
    }

    #[test]
    fn a_finance_user_gets_their_own_bureau_by_default() {
        let (query, encoding) = ledger_request(&request(), &finance_of(Bureau::Heshan)).unwrap();
        assert_eq!(query.bureau, Some(Bureau::Heshan));
        assert_eq!(encoding, FileEncoding::Gb18030);
        let other = pb::ExportLedgerRequest { paying_bureau: common::BureauCode::Enping as i32, ..request() };
        assert_eq!(
            ledger_request(&other, &finance_of(Bureau::Heshan)).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn months_and_format_are_checked() {
        let bad = pb::ExportLedgerRequest {
            from_month: Some(common::YearMonth { year: 2026, month: 7 }),
            format: common::FileFormat::Pdf as i32,
            ..request()
        };
        let err = ledger_request(&bad, &finance_of(Bureau::Heshan)).unwrap_err();
        use tonic_types::StatusExt;
        let fields: Vec<_> =
            err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["to_month", "format"]);
    }

    #[test]
    fn a_withholding_return_names_its_bureau_unless_the_caller_has_one() {
        let request = pb::ExportWithholdingReturnRequest {
            request_id: "r".into(),
            paying_bureau: 0,
            month: Some(common::YearMonth { year: 2026, month: 4 }),
            format: common::FileFormat::Xlsx as i32,
        };
        let (bureau, _, format) = withholding_request(&request, &finance_of(Bureau::Heshan)).unwrap();
        assert_eq!((bureau, format), (Bureau::Heshan, ExportFormat::Xlsx));
        let auditor =
            Caller { subject: "a".into(), role: Role::Auditor, bureau: None, expert_id: None, acting_for: None };
        let err = withholding_request(&request, &auditor).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_expert_gets_their_own_yearly_statement_and_no_one_elses() {
        let expert = Caller {
            subject: "e".into(),
            role: Role::Expert,
            bureau: None,
            expert_id: Some("exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into()),
            acting_for: None,
        };
        let request = pb::ExportYearlyStatementRequest {
            request_id: "r".into(),
            expert_id: String::new(),
            year: 2026,
            paying_bureau: 0,
            format: common::FileFormat::CsvUtf8 as i32,
        };
        let (id, bureau, year, _) = yearly_request(&request, &expert).unwrap();
        assert_eq!((id.as_str(), bureau, year), ("exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f", None, 2026));
        let other = pb::ExportYearlyStatementRequest {
            expert_id: "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e00".into(),
            ..request.clone()
        };
        assert_eq!(yearly_request(&other, &expert).unwrap_err().code(), tonic::Code::PermissionDenied);
        let pdf = pb::ExportYearlyStatementRequest { format: common::FileFormat::Pdf as i32, year: 1999, ..request };
        let err = yearly_request(&pdf, &expert).unwrap_err();
        use tonic_types::StatusExt;
        let fields: Vec<_> =
            err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["year", "format"]);
    }
}
