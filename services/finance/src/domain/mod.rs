//! Finance's rules, free of gRPC and SQL.
//!
//! Fees (article 10; D1, D2, D9): [`hours`] turns minutes into class hours and start times into
//! half-days, [`cap`] shares an expert's half-day cap among sessions, [`fees`] prices each session,
//! [`slot`] turns a revision from dispatch into reversing and charge lines, [`fee_line`] is a line
//! as kept, [`tax`] computes the withholding on a month's income, and [`statement`] settles one
//! payment of a month. [`batch`] is a payment batch and its approvals; [`documents`] lays out the
//! bank file, the withholding return and the yearly statement as [`table`]s, which render to CSV or
//! XLSX; [`ledger`] is the ledger by month, bureau and fund.
//! docs/fees-and-tax.md explains the rules with worked examples.

pub mod batch;
pub mod cap;
pub mod documents;
pub mod export;
pub mod fee_line;
pub mod fees;
pub mod hours;
pub mod ledger;
pub mod money;
pub mod slot;
pub mod statement;
pub mod table;
pub mod tax;

pub use batch::{Approval, ApprovalLevel, Batch, BatchId, BatchItem, BatchStatus, Refusal, WithholdingRecord};
pub use cap::{Allocation, SlotSession, allocate_cap};
pub use documents::{MonthIncome, Payee, YearRow, bank_file, withholding_return, yearly_statement};
pub use export::{ExportId, ExportKind, ExportRecord, FileEncoding};
pub use fee_line::{EditionFees, FeeLine, FeeLineId, LineKind, LineStatus, Payer, SlotKey};
pub use fees::{FeeBasis, FeeRules, SessionFee, ZeroReason, price_session, price_slot};
pub use hours::{ClassHourRules, HalfDay, Rounding};
pub use ledger::{Ledger, LedgerQuery, LedgerRow, MonthRange, YearMonth};
pub use slot::{
    Charge, HeldLine, Reversal, ReversalCause, RevisionVerdict, SlotChanges, SlotError, SlotRevision, WorkedSession,
    judge_revision, revise_slot,
};
pub use statement::{MonthSoFar, Payment, PaymentAmounts, settle_payment};
pub use table::{Cell, ExportFormat, Table};
pub use tax::{Deduction, TaxBand, TaxComputation, Withholding, gross_for_net, net_of_tax, tax_due, withhold};
