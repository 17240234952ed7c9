//! 劳务费 — the fee of one session (article 10): the edition's rate times the billable class
//! hours the cap left it, in fen; zero, with the reason, for a voided report or an expert who was
//! a civil servant on the work date.
//!
//! The fee basis (D9) is carried on each line. Under PRE_TAX the line's amount is the gross fee.
//! Under AFTER_TAX it is what the expert must net: the gross that achieves it depends on
//! everything else paid to the expert by the same bureau in the same month (the tax is
//! progressive and computed on the month's total), so the gross-up is done once per payment on
//! the monthly statement ([`super::statement::settle_payment`], method in
//! [`super::tax::gross_for_net`]), never line by line.

use super::{
    cap::{Allocation, SlotSession, allocate_cap},
    hours::{ClassHourRules, Rounding},
};

/// What the per-class-hour rate means for tax (D9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeeBasis {
    /// The rate is the gross fee; withholding comes out of it (edition 1).
    PreTax,
    /// The fee is grossed up so the expert nets the rate.
    AfterTax,
}

impl FeeBasis {
    /// The contract's name without its prefix (`FEE_BASIS_PRE_TAX` -> `PRE_TAX`).
    pub fn code(self) -> &'static str {
        match self {
            Self::PreTax => "PRE_TAX",
            Self::AfterTax => "AFTER_TAX",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "PRE_TAX" => Some(Self::PreTax),
            "AFTER_TAX" => Some(Self::AfterTax),
            _ => None,
        }
    }
}

/// The fee parameters of the edition in force on the work date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRules {
    /// Fee per class hour in fen (10000 = 100 yuan).
    pub rate_per_class_hour_fen: i64,
    pub basis: FeeBasis,
    pub class_hours: ClassHourRules,
    /// Cap per expert per half-day across all tasks and payers.
    pub max_class_hours_per_half_day: u32,
    /// Civil servants on the work date are paid nothing.
    pub civil_servants_exempt: bool,
}

impl FeeRules {
    /// Edition 1: 100 yuan, PRE_TAX, 45-minute class hours by FLOOR, 4 per half-day, civil
    /// servants exempt (article 10, D1, D9).
    pub const EDITION_1: Self = Self {
        rate_per_class_hour_fen: 10_000,
        basis: FeeBasis::PreTax,
        class_hours: ClassHourRules::EDITION_1,
        max_class_hours_per_half_day: 4,
        civil_servants_exempt: true,
    };
}

/// Why a charge is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZeroReason {
    /// A civil servant on the work date (article 10), per the registry's history.
    CivilServant,
    /// The report was voided (DOMAIN.md 10.7).
    ReportVoided,
    /// Earlier sessions of the half-day already took the cap.
    CapExhausted,
    /// The rounding left no class hour for this session (fewer minutes than a class hour under
    /// FLOOR, or the assignment's earlier sessions in the slot already counted them).
    BelowOneClassHour,
}

impl ZeroReason {
    /// The contract's name without its prefix (`ZERO_REASON_CIVIL_SERVANT` -> `CIVIL_SERVANT`).
    pub fn code(self) -> &'static str {
        match self {
            Self::CivilServant => "CIVIL_SERVANT",
            Self::ReportVoided => "REPORT_VOIDED",
            Self::CapExhausted => "CAP_EXHAUSTED",
            Self::BelowOneClassHour => "BELOW_ONE_CLASS_HOUR",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "CIVIL_SERVANT" => Some(Self::CivilServant),
            "REPORT_VOIDED" => Some(Self::ReportVoided),
            "CAP_EXHAUSTED" => Some(Self::CapExhausted),
            "BELOW_ONE_CLASS_HOUR" => Some(Self::BelowOneClassHour),
            _ => None,
        }
    }
}

/// The fee of one session: what a charge line records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFee {
    pub allocation: Allocation,
    pub rate_fen: i64,
    pub basis: FeeBasis,
    pub rounding: Rounding,
    /// `rate_fen` x billable class hours; 0 with a `zero_reason`. Under AFTER_TAX, the net the
    /// expert must receive for the session.
    pub amount_fen: i64,
    pub zero_reason: Option<ZeroReason>,
    /// For a voided report, the void reason; otherwise empty.
    pub zero_detail: String,
}

/// The fee of one allocated session. `civil_servant_on_work_date` is the registry's answer for
/// the expert on the session's date.
///
/// When several reasons apply, the first of these is recorded: the report was voided, the expert
/// was a civil servant, the rounding left no class hour, the cap was exhausted. A civil servant's
/// line still shows the billable class hours the cap gave it, so the record says what was not paid.
pub fn price_session(allocation: Allocation, civil_servant_on_work_date: bool, rules: &FeeRules) -> SessionFee {
    let exempt = civil_servant_on_work_date && rules.civil_servants_exempt;
    let (zero_reason, zero_detail) = if let Some(reason) = &allocation.session.void_reason {
        (Some(ZeroReason::ReportVoided), reason.clone())
    } else if exempt {
        (Some(ZeroReason::CivilServant), String::new())
    } else if allocation.class_hours == 0 {
        (Some(ZeroReason::BelowOneClassHour), String::new())
    } else if allocation.billable_class_hours == 0 {
        (Some(ZeroReason::CapExhausted), String::new())
    } else {
        (None, String::new())
    };
    let amount_fen = match zero_reason {
        Some(_) => 0,
        None => rules.rate_per_class_hour_fen * i64::from(allocation.billable_class_hours),
    };
    SessionFee {
        allocation,
        rate_fen: rules.rate_per_class_hour_fen,
        basis: rules.basis,
        rounding: rules.class_hours.rounding,
        amount_fen,
        zero_reason,
        zero_detail,
    }
}

/// The fees of every session of one expert's half-day slot, in the cap's order: the cap
/// allocation ([`allocate_cap`]) then [`price_session`] for each.
pub fn price_slot(sessions: &[SlotSession], civil_servant_on_work_date: bool, rules: &FeeRules) -> Vec<SessionFee> {
    allocate_cap(sessions, rules.class_hours, rules.max_class_hours_per_half_day)
        .into_iter()
        .map(|a| price_session(a, civil_servant_on_work_date, rules))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::domain::cap::tests::session;

    fn half_up() -> FeeRules {
        FeeRules {
            class_hours: ClassHourRules {
                minutes_per_class_hour: NonZeroU32::new(45).unwrap(),
                rounding: Rounding::HalfUp,
            },
            ..FeeRules::EDITION_1
        }
    }

    fn amounts(fees: &[SessionFee]) -> Vec<(u32, i64, Option<ZeroReason>)> {
        fees.iter().map(|f| (f.allocation.billable_class_hours, f.amount_fen, f.zero_reason)).collect()
    }

    #[test]
    fn appendix_a4_165_minutes_pay_300_yuan_by_floor_and_400_by_half_up() {
        let sessions = [session("asg_a", "s1", 9, 0, 165)];
        assert_eq!(amounts(&price_slot(&sessions, false, &FeeRules::EDITION_1)), [(3, 30_000, None)]);
        assert_eq!(amounts(&price_slot(&sessions, false, &half_up())), [(4, 40_000, None)]);
    }

    #[test]
    fn appendix_a5_a_full_day_pays_800_yuan() {
        let am = price_slot(&[session("asg_a", "s1", 8, 30, 210)], false, &FeeRules::EDITION_1);
        let pm = price_slot(&[session("asg_a", "s2", 14, 30, 180)], false, &FeeRules::EDITION_1);
        assert_eq!(amounts(&am), [(4, 40_000, None)]);
        assert_eq!(amounts(&pm), [(4, 40_000, None)]);
        // HALF_UP: the morning's 5 class hours are capped at 4.
        let am = price_slot(&[session("asg_a", "s1", 8, 30, 210)], false, &half_up());
        assert_eq!(am[0].allocation.class_hours, 5);
        assert_eq!(amounts(&am), [(4, 40_000, None)]);
    }

    #[test]
    fn appendix_a6_a_civil_servant_gets_a_zero_line_with_the_reason() {
        let am = price_slot(&[session("asg_a", "s1", 8, 30, 210)], true, &FeeRules::EDITION_1);
        assert_eq!(amounts(&am), [(4, 0, Some(ZeroReason::CivilServant))]);
        assert_eq!(am[0].rate_fen, 10_000);
    }

    #[test]
    fn a_civil_servant_is_paid_when_the_edition_does_not_exempt_them() {
        let rules = FeeRules { civil_servants_exempt: false, ..FeeRules::EDITION_1 };
        let am = price_slot(&[session("asg_a", "s1", 8, 30, 210)], true, &rules);
        assert_eq!(amounts(&am), [(4, 40_000, None)]);
    }

    #[test]
    fn a_voided_report_gets_a_zero_line_carrying_the_void_reason() {
        let mut voided = session("asg_a", "s1", 8, 30, 210);
        voided.void_reason = Some("incident inc_1: gifts accepted, 9(八)".into());
        let fees = price_slot(&[voided], true, &FeeRules::EDITION_1);
        assert_eq!(amounts(&fees), [(0, 0, Some(ZeroReason::ReportVoided))]);
        assert_eq!(fees[0].zero_detail, "incident inc_1: gifts accepted, 9(八)");
        assert_eq!(fees[0].allocation.class_hours, 4, "the class hours worked stay on record");
    }

    #[test]
    fn a_session_after_the_cap_gets_a_zero_line_saying_so() {
        let sessions = [session("asg_a", "s1", 8, 30, 180), session("asg_b", "s2", 11, 0, 60)];
        let fees = price_slot(&sessions, false, &FeeRules::EDITION_1);
        assert_eq!(amounts(&fees), [(4, 40_000, None), (0, 0, Some(ZeroReason::CapExhausted))]);
    }

    #[test]
    fn a_session_under_one_class_hour_gets_a_zero_line_saying_so() {
        let fees = price_slot(&[session("asg_a", "s1", 8, 30, 44)], false, &FeeRules::EDITION_1);
        assert_eq!(amounts(&fees), [(0, 0, Some(ZeroReason::BelowOneClassHour))]);
    }

    #[test]
    fn a_partly_capped_session_is_paid_for_what_the_cap_left() {
        let sessions = [session("asg_a", "s1", 8, 30, 135), session("asg_b", "s2", 10, 45, 90)];
        let fees = price_slot(&sessions, false, &FeeRules::EDITION_1);
        assert_eq!(amounts(&fees), [(3, 30_000, None), (1, 10_000, None)]);
        assert_eq!(fees[1].allocation.class_hours, 2);
    }

    #[test]
    fn the_rate_and_basis_come_from_the_edition() {
        let rules = FeeRules { rate_per_class_hour_fen: 12_050, basis: FeeBasis::AfterTax, ..FeeRules::EDITION_1 };
        let fees = price_slot(&[session("asg_a", "s1", 8, 30, 100)], false, &rules);
        assert_eq!(amounts(&fees), [(2, 24_100, None)]);
        assert_eq!(fees[0].basis, FeeBasis::AfterTax);
        assert_eq!(fees[0].rounding, Rounding::Floor);
    }

    #[test]
    fn codes_round_trip() {
        for b in [FeeBasis::PreTax, FeeBasis::AfterTax] {
            assert_eq!(FeeBasis::from_code(b.code()), Some(b));
        }
        for z in [
            ZeroReason::CivilServant,
            ZeroReason::ReportVoided,
            ZeroReason::CapExhausted,
            ZeroReason::BelowOneClassHour,
        ] {
            assert_eq!(ZeroReason::from_code(z.code()), Some(z));
        }
    }
}
