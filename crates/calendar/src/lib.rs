//! The China working-day calendar (工作日), fail-closed.
//!
//! Owns the project's own transcription of the State Council's yearly holiday notices (one
//! `data/YYYY.toml` per year, each citing its notice), the optional overlay directory through which
//! operators add a year without a rebuild, and the working-day arithmetic that legal deadlines
//! rest on: article 9(七)'s "3 working days' notice" as decided in D3, among others.
//!
//! A date in a year without a notice is an error naming that year, never a Monday-to-Friday guess
//! (D3, superseding DOMAIN.md 14.1's fallback). The data here is independent of the holiday-cn
//! files the tests compare it with.
//!
//! Pure library: no I/O beyond reading the data directory once at load, no clock (callers pass
//! today), and it must not depend on any service, storage or gRPC crate, nor on the policy
//! editions (callers pass the notice days and cut-off time of the edition in force).

mod calendar;
mod coverage;
mod error;
mod year_file;

pub use calendar::{Calendar, Day, SHANGHAI, YearSource, at_shanghai};
pub use coverage::Coverage;
pub use error::{CalendarError, CalendarWarning, FileProblem, NotCovered};
pub use year_file::Notice;
