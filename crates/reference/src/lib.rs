//! `supervision.calendar.v1.CalendarService`: the China working-day calendar
//! (`supervision-calendar`) and the policy editions (`supervision-policy`), loaded once at start
//! and served by every service on its own port, so each answers from the data it runs on.
//!
//! Owns the start-up loading of both data sets from their optional overlay directories (a bad
//! file refuses start), the logging of what the load found, the proto <-> domain conversion and
//! the one mapping of "year not covered" and "no edition in force" to `FAILED_PRECONDITION`.
//! It holds no business rule of its own and no storage.
//!
//! # Wiring it into a service
//!
//! Three lines in the service's `app.rs`:
//!
//! ```ignore
//! // 1. In `Config`, beside `common`: --calendar-data-dir / CALENDAR_DATA_DIR and
//! //    --policy-data-dir / POLICY_DATA_DIR.
//! #[command(flatten)]
//! pub reference: supervision_reference::ReferenceArgs,
//!
//! // 2. In `App::build`, before binding (a bad year or edition file refuses start, naming it):
//! let reference = config.reference.load()?;
//!
//! // 3. Where the routes are built (logs the coverage WARN when next year is missing):
//! let routes = routes.add_service(reference.service(clock));
//! ```
//!
//! The controlled specialty list (national occupational classification, [`Specialties`]) rides
//! along: built in are its 8 major groups; the registry, which serves it, loads the full list
//! from its specialty directory with [`Specialties::load`] and [`Reference::with_specialties`].
//!
//! [`Reference::calendar`] and [`Reference::editions`] give the same data to the service's own
//! use cases; [`ReferenceError`] converts into the same `Status` the RPCs answer.

mod args;
mod convert;
mod error;
mod service;
mod specialties;

pub use args::{LoadError, ReferenceArgs};
pub use error::{
    CALENDAR_YEAR_MISSING, ERROR_DOMAIN, NO_EDITION_IN_FORCE, ReferenceError, no_edition_status, not_covered_status,
};
pub use service::{CalendarApi, DeclineDeadline, Reference, shanghai_today};
pub use specialties::{SPECIALTY_FILE, Specialties, SpecialtyError};

#[cfg(test)]
mod tests;
