//! Where the overlay directories come from, and loading both data sets at start.

use std::{path::PathBuf, sync::Arc};

use clap::Args;
use supervision_calendar::{Calendar, CalendarError};
use supervision_policy::{EditionError, EditionWarning, Editions};

use crate::{
    service::Reference,
    specialties::{SPECIALTY_FILE, Specialties, SpecialtyError},
};

/// The overlay directories of the reference data; flatten this into a service's `Config`.
///
/// Both are optional: without them a service runs on the years and editions built into it.
#[derive(Debug, Clone, Default, Args)]
pub struct ReferenceArgs {
    /// Directory of extra working-day calendar year files (`2027.toml`, ...), loaded at start on
    /// top of the years built in (a ConfigMap in production).
    #[arg(long, env = "CALENDAR_DATA_DIR")]
    pub calendar_data_dir: Option<PathBuf>,
    /// Directory of extra policy edition files (`edition-2.toml`, ...), loaded at start on top of
    /// the editions built in (a ConfigMap in production). It also holds the bureau's copy of the
    /// occupational classification, `specialties.csv` (`code,name`), read on top of the 8 major
    /// groups built in.
    #[arg(long, env = "POLICY_DATA_DIR")]
    pub policy_data_dir: Option<PathBuf>,
}

/// Why the reference data was refused at start. The message names the file (or directory).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Policy(#[from] EditionError),
    #[error(transparent)]
    Specialties(#[from] SpecialtyError),
}

impl LoadError {
    /// The file the error is about, if it is about one.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::Calendar(err) => err.file(),
            Self::Policy(err) => err.file(),
            Self::Specialties(err) => Some(err.file()),
        }
    }
}

impl ReferenceArgs {
    /// Loads the calendar and the editions, each from what is built in plus its directory.
    ///
    /// A bad file refuses the whole load: a service must not start on data an operator believes
    /// holds a year or an edition it does not. Every warning of the loaders is logged, and one
    /// INFO line says what was loaded. The coverage warning needs today's date, so
    /// [`Reference::service`] logs it.
    pub fn load(&self) -> Result<Reference, LoadError> {
        let calendar = Calendar::load(self.calendar_data_dir.as_deref()).inspect_err(|err| {
            tracing::error!(error = %err, "the working-day calendar data was refused");
        })?;
        for warning in calendar.warnings() {
            tracing::warn!("{warning}");
        }
        let editions = Editions::load(self.policy_data_dir.as_deref()).inspect_err(|err| {
            tracing::error!(error = %err, "the policy editions were refused");
        })?;
        for warning in editions.warnings() {
            // The specialty list shares the directory; it is read below, not ignored.
            if matches!(warning, EditionWarning::IgnoredFile { file } if file.ends_with(SPECIALTY_FILE)) {
                continue;
            }
            tracing::warn!("{warning}");
        }
        let specialties = Specialties::load(self.policy_data_dir.as_deref()).inspect_err(|err| {
            tracing::error!(error = %err, "the specialty list was refused");
        })?;

        let overlay_years: Vec<String> =
            calendar.sources().filter(|s| !s.embedded).map(|s| format!("{} from {}", s.year, s.file)).collect();
        tracing::info!(
            years = ?calendar.covered_years(),
            overlay = %overlay_years.join(", "),
            dir = %display_dir(self.calendar_data_dir.as_ref()),
            "working-day calendar loaded"
        );
        let loaded: Vec<String> = editions
            .all()
            .iter()
            .map(|e| format!("{} ({}, {} to {}, {})", e.number, e.doc_no, e.effective_from, e.effective_to, e.source))
            .collect();
        tracing::info!(
            editions = %loaded.join("; "),
            dir = %display_dir(self.policy_data_dir.as_ref()),
            "policy editions loaded"
        );
        let [majors, middles, minors, occupations] = specialties.counts();
        tracing::info!(
            majors,
            middles,
            minors,
            occupations,
            file = %specialties.installed().map_or_else(|| "none (major groups only)".to_owned(), |p| p.display().to_string()),
            "occupational classification loaded"
        );
        Ok(Reference::new(Arc::new(calendar), Arc::new(editions)).with_specialties(specialties))
    }
}

fn display_dir(dir: Option<&PathBuf>) -> String {
    dir.map_or_else(|| "none (built-in data only)".to_owned(), |d| d.display().to_string())
}
