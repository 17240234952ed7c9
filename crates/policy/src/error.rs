//! Refused edition files, and a date no edition covers.

use std::{fmt, io, path::PathBuf};

use chrono::NaiveDate;

use crate::edition::Edition;

/// Why a set of edition files was refused at load. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum EditionError {
    #[error("cannot read the policy data directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("policy edition file {file}: cannot read it: {source}")]
    ReadFile {
        file: String,
        #[source]
        source: io::Error,
    },
    /// Not TOML, a missing or misspelt key, or a value of the wrong type; the message carries the
    /// line and the key.
    #[error("policy edition file {file}: {message}")]
    Parse { file: String, message: String },
    #[error("policy edition file {file}: `{field}` {problem}")]
    Invalid { file: String, field: String, problem: String },
    #[error("policy edition {number} is defined twice, in {first_file} and {second_file}")]
    DuplicateNumber { number: u32, first_file: String, second_file: String },
    /// Two editions in force on the same day would make `edition_in_force` ambiguous.
    #[error(
        "policy editions overlap: edition {} ({}, {} to {}) and edition {} ({}, {} to {})",
        first.number, first.file, first.effective_from, first.effective_to,
        second.number, second.file, second.effective_from, second.effective_to
    )]
    Overlap { first: Box<EditionRef>, second: Box<EditionRef> },
    /// A later edition must have a higher number, so "edition 2" always means the successor.
    #[error(
        "policy edition {} ({}) starts on {}, after edition {} ({}), but has the lower number",
        earlier.number, earlier.file, earlier.effective_from, later.number, later.file
    )]
    OutOfOrder { earlier: Box<EditionRef>, later: Box<EditionRef> },
}

impl EditionError {
    /// The file the error is about (the first of two for an overlap), if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::ReadDir { .. } => None,
            Self::ReadFile { file, .. } | Self::Parse { file, .. } | Self::Invalid { file, .. } => Some(file),
            Self::DuplicateNumber { first_file, .. } => Some(first_file),
            Self::Overlap { first, .. } => Some(&first.file),
            Self::OutOfOrder { earlier, .. } => Some(&earlier.file),
        }
    }
}

/// An edition named in an error: enough to find it and its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditionRef {
    pub number: u32,
    pub doc_no: String,
    pub effective_from: NaiveDate,
    pub effective_to: NaiveDate,
    pub file: String,
}

impl From<&Edition> for EditionRef {
    fn from(e: &Edition) -> Self {
        Self {
            number: e.number,
            doc_no: e.doc_no.clone(),
            effective_from: e.effective_from,
            effective_to: e.effective_to,
            file: e.source.clone(),
        }
    }
}

/// No edition is in force on `date`: nothing new (task, draw, appointment) may be set on it (D6).
/// Services return it as `FAILED_PRECONDITION`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NoEditionInForce {
    pub date: NaiveDate,
    /// The last edition that ended before `date`.
    pub previous: Option<Box<EditionRef>>,
    /// The first edition that starts after `date`.
    pub next: Option<Box<EditionRef>>,
}

impl NoEditionInForce {
    /// The end date of the last edition before `date`, which the error message names.
    pub fn last_end_date(&self) -> Option<NaiveDate> {
        self.previous.as_ref().map(|p| p.effective_to)
    }
}

impl fmt::Display for NoEditionInForce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no policy edition is in force on {}", self.date)?;
        match (&self.previous, &self.next) {
            (Some(p), None) => write!(
                f,
                ": edition {} ({}) ended on {} and no successor edition is loaded",
                p.number, p.doc_no, p.effective_to
            ),
            (Some(p), Some(n)) => write!(
                f,
                ": edition {} ({}) ended on {} and edition {} ({}) starts on {}",
                p.number, p.doc_no, p.effective_to, n.number, n.doc_no, n.effective_from
            ),
            (None, Some(n)) => {
                write!(f, ": the first edition, {} ({}), starts on {}", n.number, n.doc_no, n.effective_from)
            }
            (None, None) => write!(f, ": no edition is loaded"),
        }
    }
}

/// Something loaded but worth a line in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditionWarning {
    /// An overlay file replaced the edition of the same number shipped with the build, as when
    /// the bureau shortens an edition by repeal (DOMAIN.md section 15).
    OverlayReplacesEmbedded { number: u32, file: String },
    /// A file in the data directory that is not a `.toml` file.
    IgnoredFile { file: String },
}

impl fmt::Display for EditionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OverlayReplacesEmbedded { number, file } => {
                write!(f, "policy edition file {file} replaces edition {number} shipped with the build")
            }
            Self::IgnoredFile { file } => {
                write!(f, "policy data directory: ignoring {file}, which is not a .toml file")
            }
        }
    }
}
