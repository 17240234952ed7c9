//! The loaded reference data and the CalendarService handlers over it: convert, ask the
//! calendar or the editions, convert back.

use std::sync::{
    Arc,
    atomic::{AtomicI32, Ordering},
};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime};
use supervision_calendar::{Calendar, Coverage, Day, SHANGHAI};
use supervision_kit::{FieldViolations, SharedClock, metrics::Sample};
use supervision_policy::{Edition, Editions};
use supervision_proto::calendar::{
    self as pb,
    calendar_service_server::{CalendarService, CalendarServiceServer},
    get_policy_edition_request::Selector,
};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    convert,
    error::{ReferenceError, no_edition_status, not_covered_status},
    specialties::Specialties,
};

/// Today's date in Asia/Shanghai by `clock`: the "today" of coverage and of `supctl` defaults.
pub fn shanghai_today(clock: &SharedClock) -> NaiveDate {
    clock.now().with_timezone(&SHANGHAI).date_naive()
}

/// The working-day calendar and the policy editions a service runs on, loaded once at start
/// ([`crate::ReferenceArgs::load`]) and shared, read-only, by its RPCs and its use cases.
#[derive(Debug, Clone)]
pub struct Reference {
    calendar: Arc<Calendar>,
    editions: Arc<Editions>,
    specialties: Arc<Specialties>,
}

/// The D3 decline deadline of a first session date, and the edition whose parameters gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclineDeadline {
    /// The cut-off time, Asia/Shanghai, on the deadline day.
    pub deadline: DateTime<FixedOffset>,
    pub cutoff: NaiveTime,
    pub notice_working_days: u32,
    pub edition_number: u32,
}

impl Reference {
    /// With the built-in specialty list (the major groups); see [`Reference::with_specialties`].
    pub fn new(calendar: Arc<Calendar>, editions: Arc<Editions>) -> Self {
        Self { calendar, editions, specialties: Arc::new(Specialties::embedded()) }
    }

    /// The same data with `specialties` as the controlled specialty list (loaded by the
    /// registry from its specialty directory, [`Specialties::load`]).
    #[must_use]
    pub fn with_specialties(self, specialties: Specialties) -> Self {
        Self { specialties: Arc::new(specialties), ..self }
    }

    /// The controlled specialty list (national occupational classification).
    pub fn specialties(&self) -> &Arc<Specialties> {
        &self.specialties
    }

    /// Only what is built in, without overlay directories (tests, tools).
    pub fn embedded() -> Self {
        Self::new(Arc::new(Calendar::embedded()), Arc::new(Editions::embedded()))
    }

    pub fn calendar(&self) -> &Arc<Calendar> {
        &self.calendar
    }

    pub fn editions(&self) -> &Arc<Editions> {
        &self.editions
    }

    /// The calendar's coverage as of `today` (Asia/Shanghai).
    pub fn coverage(&self, today: NaiveDate) -> Coverage {
        self.calendar.coverage(today)
    }

    /// Logs the coverage as of `today`: WARN when an operator must act (from 1 December without
    /// next year, or today itself uncovered), INFO otherwise. Never fails: readiness does not
    /// depend on it.
    pub fn log_coverage(&self, today: NaiveDate) -> Coverage {
        let coverage = self.coverage(today);
        if coverage.needs_attention() {
            tracing::warn!(
                first_uncovered_date = %coverage.first_uncovered_date,
                days_until_uncovered = coverage.days_until_uncovered,
                "{coverage}"
            );
        } else {
            tracing::info!("{coverage}");
        }
        coverage
    }

    /// The gauges operators alert on (docs/operations.md): days until the calendar runs out,
    /// whether next year is missing from 1 December, and days left in the policy editions in
    /// force (-1 when none is).
    pub fn metrics_probe(
        &self,
        clock: SharedClock,
    ) -> impl Fn() -> futures::future::BoxFuture<'static, Vec<Sample>> + Send + Sync + 'static {
        let reference = self.clone();
        move || {
            let today = shanghai_today(&clock);
            let coverage = reference.coverage(today);
            let days_left = reference.editions.days_left(today).unwrap_or(-1);
            Box::pin(async move {
                vec![
                    Sample::new(
                        "supervision_calendar_days_until_uncovered",
                        "Days from today to the first date the working-day calendar cannot answer for",
                        coverage.days_until_uncovered as f64,
                    ),
                    Sample::new(
                        "supervision_calendar_next_year_missing",
                        "1 from 1 December while next year's holiday notice is not loaded",
                        if coverage.next_year_missing_warning { 1.0 } else { 0.0 },
                    ),
                    Sample::new(
                        "supervision_policy_edition_days_left",
                        "Days left in the policy editions in force (-1: none in force today)",
                        days_left as f64,
                    ),
                ]
            })
        }
    }

    /// The D3 decline deadline for an expert's first session on `first_session_date`, with the
    /// parameters of the edition in force on that date.
    pub fn decline_deadline(&self, first_session_date: NaiveDate) -> Result<DeclineDeadline, ReferenceError> {
        let edition = self.editions.edition_in_force(first_session_date)?;
        let rules = &edition.dispatch;
        let deadline = self.calendar.decline_deadline(
            first_session_date,
            rules.decline_notice_working_days,
            rules.decline_cutoff,
        )?;
        Ok(DeclineDeadline {
            deadline,
            cutoff: rules.decline_cutoff,
            notice_working_days: rules.decline_notice_working_days,
            edition_number: edition.number,
        })
    }

    /// The CalendarService over this data, for the service's routes. Logs the coverage as of
    /// today by `clock` now, and again on the first call of each later day, so a pod that runs
    /// into December says so without a restart.
    pub fn service(&self, clock: SharedClock) -> CalendarServiceServer<CalendarApi> {
        CalendarServiceServer::new(self.api(clock))
    }

    /// The handlers themselves, as [`Reference::service`] wraps them.
    pub fn api(&self, clock: SharedClock) -> CalendarApi {
        let today = shanghai_today(&clock);
        self.log_coverage(today);
        CalendarApi {
            reference: self.clone(),
            clock,
            coverage_logged_on: Arc::new(AtomicI32::new(today.num_days_from_ce())),
        }
    }

    /// The year whose file gave a listed date its meaning. A State Council notice may start the
    /// New Year holiday (and its make-up days) in late December of the year before, as 2023's
    /// does on 2022-12-31; such a December date shares its holiday with 1 January of the next
    /// year, so its notice is the next year's.
    fn notice_year(&self, date: NaiveDate, day: Day<'_>) -> i32 {
        let name = match day {
            Day::Holiday { name } | Day::MakeUpWorkingDay { name } => name,
            Day::Weekday | Day::Weekend => return date.year(),
        };
        let new_year = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1);
        let next_starts_same_holiday = date.month() == 12
            && new_year.and_then(|d| self.calendar.day(d).ok()).is_some_and(|d| d == Day::Holiday { name });
        if next_starts_same_holiday { date.year() + 1 } else { date.year() }
    }

    fn notices_of(&self, year: i32) -> Vec<pb::Notice> {
        self.calendar.sources().find(|s| s.year == year).map(|s| convert::notices(&s.notices)).unwrap_or_default()
    }

    fn edition_by_number(&self, number: i32) -> Result<&Edition, Status> {
        if number < 1 {
            return Err(supervision_kit::error::invalid_field("number", "must be 1 or more"));
        }
        self.editions.all().iter().find(|e| i64::from(e.number) == i64::from(number)).ok_or_else(|| {
            let loaded: Vec<String> = self.editions.all().iter().map(|e| e.number.to_string()).collect();
            Status::with_error_details(
                Code::NotFound,
                format!("policy edition {number} is not loaded (loaded: {})", loaded.join(", ")),
                ErrorDetails::with_resource_info("supervision.calendar.v1.PolicyEdition", number.to_string(), "", ""),
            )
        })
    }
}

/// The handlers of `supervision.calendar.v1.CalendarService`; build it with
/// [`Reference::service`].
#[derive(Debug, Clone)]
pub struct CalendarApi {
    reference: Reference,
    clock: SharedClock,
    /// The day (days from the common era) the coverage was last logged.
    coverage_logged_on: Arc<AtomicI32>,
}

impl CalendarApi {
    fn today(&self) -> NaiveDate {
        let today = shanghai_today(&self.clock);
        let day = today.num_days_from_ce();
        if self.coverage_logged_on.swap(day, Ordering::Relaxed) != day {
            let coverage = self.reference.coverage(today);
            if coverage.needs_attention() {
                self.reference.log_coverage(today);
            }
        }
        today
    }
}

fn date_of(raw: Option<&supervision_proto::common::Date>, field: &str) -> Result<NaiveDate, Status> {
    let mut v = FieldViolations::new();
    let date = convert::required_date(raw, field, &mut v);
    v.check()?;
    date.ok_or_else(|| Status::internal("a date without a violation"))
}

#[tonic::async_trait]
impl CalendarService for CalendarApi {
    async fn is_working_day(
        &self,
        request: Request<pb::IsWorkingDayRequest>,
    ) -> Result<Response<pb::IsWorkingDayResponse>, Status> {
        self.today();
        let date = date_of(request.get_ref().date.as_ref(), "date")?;
        let reference = &self.reference;
        let day = reference.calendar.day(date).map_err(|e| not_covered_status(&e))?;
        let (kind, holiday_name) = convert::day(day);
        Ok(Response::new(pb::IsWorkingDayResponse {
            working_day: day.is_working_day(),
            kind: kind as i32,
            holiday_name,
            notices: reference.notices_of(reference.notice_year(date, day)),
        }))
    }

    async fn add_working_days(
        &self,
        request: Request<pb::AddWorkingDaysRequest>,
    ) -> Result<Response<pb::AddWorkingDaysResponse>, Status> {
        self.today();
        let r = request.get_ref();
        let date = date_of(r.date.as_ref(), "date")?;
        let found = self.reference.calendar.add_working_days(date, r.days).map_err(|e| not_covered_status(&e))?;
        Ok(Response::new(pb::AddWorkingDaysResponse { date: Some(convert::date(found)) }))
    }

    async fn count_working_days(
        &self,
        request: Request<pb::CountWorkingDaysRequest>,
    ) -> Result<Response<pb::CountWorkingDaysResponse>, Status> {
        self.today();
        let r = request.get_ref();
        let mut v = FieldViolations::new();
        let start = convert::required_date(r.start.as_ref(), "start", &mut v);
        let end = convert::required_date(r.end.as_ref(), "end", &mut v);
        v.check()?;
        let (Some(start), Some(end)) = (start, end) else { return Err(Status::internal("a date without a violation")) };
        let working_days =
            self.reference.calendar.working_days_between(start, end).map_err(|e| not_covered_status(&e))?;
        Ok(Response::new(pb::CountWorkingDaysResponse { working_days }))
    }

    async fn get_decline_deadline(
        &self,
        request: Request<pb::GetDeclineDeadlineRequest>,
    ) -> Result<Response<pb::GetDeclineDeadlineResponse>, Status> {
        self.today();
        let date = date_of(request.get_ref().first_session_date.as_ref(), "first_session_date")?;
        let found = self.reference.decline_deadline(date)?;
        Ok(Response::new(pb::GetDeclineDeadlineResponse {
            deadline: Some(convert::timestamp(found.deadline)),
            deadline_date: Some(convert::date(found.deadline.date_naive())),
            cutoff: Some(convert::time_of_day(found.cutoff)),
            edition_number: i32::try_from(found.edition_number).unwrap_or(i32::MAX),
        }))
    }

    async fn get_calendar_coverage(
        &self,
        _request: Request<pb::GetCalendarCoverageRequest>,
    ) -> Result<Response<pb::GetCalendarCoverageResponse>, Status> {
        let today = self.today();
        let calendar = &self.reference.calendar;
        Ok(Response::new(convert::coverage(&calendar.coverage(today), calendar.sources())))
    }

    async fn get_policy_edition(
        &self,
        request: Request<pb::GetPolicyEditionRequest>,
    ) -> Result<Response<pb::GetPolicyEditionResponse>, Status> {
        self.today();
        let edition = match &request.get_ref().selector {
            None => {
                return Err(supervision_kit::error::invalid_field(
                    "selector",
                    "set either `date` (the edition in force on it) or `number`",
                ));
            }
            Some(Selector::Date(raw)) => {
                let date = date_of(Some(raw), "date")?;
                self.reference.editions.edition_in_force(date).map_err(|e| no_edition_status(&e))?
            }
            Some(Selector::Number(number)) => self.reference.edition_by_number(*number)?,
        };
        Ok(Response::new(pb::GetPolicyEditionResponse { edition: Some(convert::edition(edition)) }))
    }

    async fn list_policy_editions(
        &self,
        _request: Request<pb::ListPolicyEditionsRequest>,
    ) -> Result<Response<pb::ListPolicyEditionsResponse>, Status> {
        self.today();
        Ok(Response::new(pb::ListPolicyEditionsResponse {
            editions: self.reference.editions.all().iter().map(convert::edition).collect(),
        }))
    }
}
