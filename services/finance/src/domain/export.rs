//! The record of an export written. The file itself is returned once and never kept, because
//! bank files and withholding returns hold account and identity numbers; its SHA-256 stays.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use supervision_kit::{
    Bureau,
    auth::Actor,
    vocab::{is_prefixed_id, new_prefixed_id},
};

/// `xpt_` and 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExportId(String);

impl ExportId {
    const PREFIX: &'static str = "xpt_";

    pub fn generate() -> Self {
        Self(new_prefixed_id(Self::PREFIX))
    }

    pub fn parse(s: &str) -> Option<Self> {
        is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    BankPaymentFile,
    WithholdingReturn,
    Ledger,
    YearlyStatement,
}

impl ExportKind {
    pub const ALL: [Self; 4] = [Self::BankPaymentFile, Self::WithholdingReturn, Self::Ledger, Self::YearlyStatement];

    pub fn code(self) -> &'static str {
        match self {
            Self::BankPaymentFile => "BANK_PAYMENT_FILE",
            Self::WithholdingReturn => "WITHHOLDING_RETURN",
            Self::Ledger => "LEDGER",
            Self::YearlyStatement => "YEARLY_STATEMENT",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// How a CSV file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    Utf8,
    /// What spreadsheet programs on Chinese Windows open without asking.
    Gb18030,
}

impl FileEncoding {
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Self::Utf8 => text.as_bytes().to_vec(),
            Self::Gb18030 => encoding_rs::GB18030.encode(text).0.into_owned(),
        }
    }

    /// The contract's format name.
    pub fn format_code(self) -> &'static str {
        match self {
            Self::Utf8 => "FILE_FORMAT_CSV_UTF8",
            Self::Gb18030 => "FILE_FORMAT_CSV_GB18030",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Utf8 => "text/csv; charset=utf-8",
            Self::Gb18030 => "text/csv; charset=gb18030",
        }
    }
}

/// What finance keeps of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRecord {
    pub id: ExportId,
    pub kind: ExportKind,
    /// The contract's format name (`FILE_FORMAT_...`).
    pub format: String,
    pub payment_batch_id: String,
    pub bureau: Option<Bureau>,
    /// `YYYY-MM` for a monthly export, `YYYY-MM..YYYY-MM` for a ledger range; empty otherwise.
    pub month: String,
    pub expert_id: String,
    pub year: i32,
    pub file_name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub row_count: i32,
    pub total_fen: i64,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
