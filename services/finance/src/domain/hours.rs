//! 学时 and 半天 — how worked minutes become whole class hours (D1) and which half-day slot a
//! session falls in (D2). The class-hour length, the rounding and the AM/PM split are edition
//! parameters; edition 1 has 45 minutes, FLOOR and 12:30.

use std::num::NonZeroU32;

use chrono::NaiveTime;

/// How worked minutes become whole class hours (D1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Whole class hours actually worked ("按实际发生的学时"); edition 1.
    Floor,
    /// A remainder of at least half a class hour counts as one (22.5 minutes of 45, so 23 whole
    /// minutes round up and 22 do not).
    HalfUp,
}

impl Rounding {
    /// The contract's name without its prefix (`ROUNDING_FLOOR` -> `FLOOR`), as in edition files.
    pub fn code(self) -> &'static str {
        match self {
            Self::Floor => "FLOOR",
            Self::HalfUp => "HALF_UP",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "FLOOR" => Some(Self::Floor),
            "HALF_UP" => Some(Self::HalfUp),
            _ => None,
        }
    }
}

/// The edition's class-hour length and rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassHourRules {
    /// 学时 — minutes in one class hour (never zero).
    pub minutes_per_class_hour: NonZeroU32,
    pub rounding: Rounding,
}

impl ClassHourRules {
    /// Edition 1: 45 minutes, whole class hours actually worked (D1).
    pub const EDITION_1: Self =
        Self { minutes_per_class_hour: NonZeroU32::new(45).unwrap(), rounding: Rounding::Floor };

    /// Whole class hours in `minutes`, by the edition's rounding. Exact integer arithmetic:
    /// FLOOR is `m / c`; HALF_UP is `floor(m / c + 1/2)` = `(2m + c) / 2c`.
    pub fn class_hours(self, minutes: u32) -> u32 {
        let m = u64::from(minutes);
        let c = u64::from(self.minutes_per_class_hour.get());
        let hours = match self.rounding {
            Rounding::Floor => m / c,
            Rounding::HalfUp => (2 * m + c) / (2 * c),
        };
        // Never more than `minutes` itself, so it fits.
        u32::try_from(hours).unwrap_or(u32::MAX)
    }
}

/// 半天 — a half-day slot (D2): AM before the split, PM from it, the evening folded into PM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HalfDay {
    /// 上午.
    Am,
    /// 下午, evening included.
    Pm,
}

impl HalfDay {
    /// Edition 1's split: 12:30 (D2).
    pub const EDITION_1_SPLIT: NaiveTime = NaiveTime::from_hms_opt(12, 30, 0).unwrap();

    /// The slot of a session that starts at `start`: AM strictly before `split`, PM from it on.
    /// A session spanning the split is dispatch's to cut in two (DOMAIN.md 10.4); finance sees
    /// each part with its own start time.
    pub fn of(start: NaiveTime, split: NaiveTime) -> Self {
        if start < split { Self::Am } else { Self::Pm }
    }

    /// The contract's name without its prefix (`HALF_DAY_AM` -> `AM`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Am => "AM",
            Self::Pm => "PM",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "AM" => Some(Self::Am),
            "PM" => Some(Self::Pm),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(minutes: u32, rounding: Rounding) -> ClassHourRules {
        ClassHourRules { minutes_per_class_hour: NonZeroU32::new(minutes).unwrap(), rounding }
    }

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn edition_1_counts_whole_45_minute_class_hours() {
        let r = ClassHourRules::EDITION_1;
        assert_eq!(r.minutes_per_class_hour.get(), 45);
        assert_eq!(r.rounding, Rounding::Floor);
        assert_eq!(r.class_hours(0), 0);
        assert_eq!(r.class_hours(44), 0);
        assert_eq!(r.class_hours(45), 1);
        assert_eq!(r.class_hours(89), 1);
        assert_eq!(r.class_hours(90), 2);
    }

    #[test]
    fn appendix_a4_165_minutes_is_3_class_hours_by_floor_and_4_by_half_up() {
        assert_eq!(rules(45, Rounding::Floor).class_hours(165), 3);
        assert_eq!(rules(45, Rounding::HalfUp).class_hours(165), 4);
    }

    #[test]
    fn appendix_a5_210_minutes_is_4_class_hours_by_floor_and_5_by_half_up() {
        assert_eq!(rules(45, Rounding::Floor).class_hours(210), 4);
        assert_eq!(rules(45, Rounding::HalfUp).class_hours(210), 5);
        assert_eq!(rules(45, Rounding::Floor).class_hours(180), 4);
    }

    #[test]
    fn half_up_rounds_a_remainder_of_23_minutes_up_and_22_down() {
        let r = rules(45, Rounding::HalfUp);
        assert_eq!(r.class_hours(22), 0);
        assert_eq!(r.class_hours(23), 1);
        assert_eq!(r.class_hours(45 + 22), 1);
        assert_eq!(r.class_hours(45 + 23), 2);
    }

    #[test]
    fn half_up_rounds_an_exact_half_up_when_the_class_hour_is_even() {
        let r = rules(60, Rounding::HalfUp);
        assert_eq!(r.class_hours(29), 0);
        assert_eq!(r.class_hours(30), 1);
        assert_eq!(r.class_hours(89), 1);
        assert_eq!(r.class_hours(90), 2);
    }

    #[test]
    fn the_class_hour_length_is_a_parameter() {
        assert_eq!(rules(60, Rounding::Floor).class_hours(165), 2);
        assert_eq!(rules(40, Rounding::Floor).class_hours(165), 4);
    }

    #[test]
    fn huge_minute_counts_do_not_overflow() {
        assert_eq!(rules(1, Rounding::HalfUp).class_hours(u32::MAX), u32::MAX);
        assert_eq!(rules(45, Rounding::HalfUp).class_hours(u32::MAX), 95_443_718);
    }

    #[test]
    fn a_session_before_12_30_is_am_and_from_12_30_is_pm() {
        let split = HalfDay::EDITION_1_SPLIT;
        assert_eq!(HalfDay::of(at(0, 0), split), HalfDay::Am);
        assert_eq!(HalfDay::of(at(12, 29), split), HalfDay::Am);
        assert_eq!(HalfDay::of(NaiveTime::from_hms_opt(12, 29, 59).unwrap(), split), HalfDay::Am);
        assert_eq!(HalfDay::of(at(12, 30), split), HalfDay::Pm);
        assert_eq!(HalfDay::of(at(14, 30), split), HalfDay::Pm);
    }

    #[test]
    fn evening_work_folds_into_pm() {
        assert_eq!(HalfDay::of(at(19, 0), HalfDay::EDITION_1_SPLIT), HalfDay::Pm);
        assert_eq!(HalfDay::of(at(23, 59), HalfDay::EDITION_1_SPLIT), HalfDay::Pm);
    }

    #[test]
    fn the_split_is_a_parameter() {
        assert_eq!(HalfDay::of(at(12, 15), at(12, 0)), HalfDay::Pm);
    }

    #[test]
    fn codes_round_trip() {
        for r in [Rounding::Floor, Rounding::HalfUp] {
            assert_eq!(Rounding::from_code(r.code()), Some(r));
        }
        for h in [HalfDay::Am, HalfDay::Pm] {
            assert_eq!(HalfDay::from_code(h.code()), Some(h));
        }
        assert_eq!(Rounding::from_code("CEILING"), None);
    }
}
