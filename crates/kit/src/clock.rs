//! The one source of "now" for the whole system.
//!
//! Production builds know only the system clock. Builds with the `test-clock` feature add a
//! clock that tests move, also across separate processes: it adds an offset read from a file
//! named by a flag that only those builds have.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, to the microsecond (what the database keeps).
    fn now(&self) -> DateTime<Utc>;
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(feature = "test-clock")]
pub use test_clock::{FileOffsetClock, ManualClock};

#[cfg(feature = "test-clock")]
mod test_clock {
    use std::{
        path::PathBuf,
        sync::{Arc, Mutex},
    };

    use chrono::{DateTime, Duration, SubsecRound, Utc};

    use super::Clock;

    /// A clock a test sets and advances in-process.
    #[derive(Debug, Clone)]
    pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

    impl ManualClock {
        pub fn at(t: DateTime<Utc>) -> Self {
            Self(Arc::new(Mutex::new(t.trunc_subsecs(6))))
        }

        pub fn set(&self, t: DateTime<Utc>) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t.trunc_subsecs(6);
        }

        pub fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// The system clock plus an offset in seconds read from a file on every call, so a test
    /// driving several service processes moves all their clocks by rewriting one file. A missing
    /// or unreadable file means no offset.
    #[derive(Debug, Clone)]
    pub struct FileOffsetClock {
        path: PathBuf,
    }

    impl FileOffsetClock {
        pub fn new(path: PathBuf) -> Self {
            Self { path }
        }
    }

    impl Clock for FileOffsetClock {
        fn now(&self) -> DateTime<Utc> {
            let offset =
                std::fs::read_to_string(&self.path).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or_default();
            (Utc::now() + Duration::seconds(offset)).trunc_subsecs(6)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_manual_clock_moves_only_when_told() {
            let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let clock = ManualClock::at(t);
            assert_eq!(clock.now(), t);
            clock.advance(Duration::days(1));
            assert_eq!(clock.now(), t + Duration::days(1));
        }

        #[test]
        fn a_file_offset_clock_follows_the_file() {
            let dir = std::env::temp_dir().join(format!("clock-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("offset");
            let clock = FileOffsetClock::new(file.clone());
            std::fs::write(&file, "86400").unwrap();
            let ahead = clock.now() - Utc::now();
            assert!(ahead > Duration::hours(23) && ahead < Duration::hours(25));
        }
    }
}
