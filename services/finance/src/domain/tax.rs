//! 劳务报酬所得 预扣预缴 — withholding on labour remuneration paid to resident individuals
//! (D9; ECOSYSTEM.md section 12; 国家税务总局公告2018年第61号 第八条 and 预扣率表二).
//!
//! One "次" is everything one paying bureau pays one expert in one payment month, across funds
//! (个人所得税法实施条例 Art. 14(一), continuous income from one project; DOMAIN.md 10.8). Tax
//! is computed on the month's cumulative income, and each payment withholds the difference
//! between that and what the month has already withheld.
//!
//! Income is integer fen. Income x 80% can end in a fifth of a fen, so the taxable amount is
//! kept exactly, in fifths of a fen, and the tax exactly in 1/500 fen. **The one rounding rule:
//! the month's tax due is rounded half up to the fen, once, at the end.** Nothing is rounded
//! before it; the rounded taxable amount and deduction are for display only.

use super::money::yuan;

/// "每次收入不超过四千元的": up to and including 4,000 yuan, 800 yuan is deducted.
pub const FLAT_DEDUCTION_LIMIT_FEN: i64 = 400_000;
/// The deduction up to 4,000 yuan: 800 yuan.
pub const FLAT_DEDUCTION_FEN: i64 = 80_000;

/// One band of 预扣率表二 (居民个人劳务报酬所得预扣预缴适用).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxBand {
    /// The band holds taxable amounts up to and including this; `None` for the top band.
    pub taxable_up_to_fen: Option<i64>,
    pub rate_percent: i64,
    pub quick_deduction_fen: i64,
}

/// 预扣率表二: 20% up to 20,000 yuan; 30% less 2,000 up to 50,000; 40% less 7,000 above. The
/// bands meet: 20,000 gives 4,000 either way and 50,000 gives 13,000 either way.
pub const BANDS: [TaxBand; 3] = [
    TaxBand { taxable_up_to_fen: Some(2_000_000), rate_percent: 20, quick_deduction_fen: 0 },
    TaxBand { taxable_up_to_fen: Some(5_000_000), rate_percent: 30, quick_deduction_fen: 200_000 },
    TaxBand { taxable_up_to_fen: None, rate_percent: 40, quick_deduction_fen: 700_000 },
];

/// Which deduction applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deduction {
    /// Income of at most 4,000 yuan: less 800 yuan.
    Flat800,
    /// Income above 4,000 yuan: less 20%.
    TwentyPercent,
}

/// The tax due on one month's income from one paying bureau.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxComputation {
    /// The month's income (收入), never below zero.
    pub income_fen: i64,
    pub deduction: Deduction,
    /// 应纳税所得额, exactly, in fifths of a fen (income x 4 above 4,000 yuan).
    pub taxable_fifths_of_fen: i64,
    pub band: TaxBand,
    /// The tax due on the month's income, rounded half up to the fen.
    pub tax_due_fen: i64,
}

impl TaxComputation {
    /// The taxable amount rounded half up to the fen, for display (the tax is computed on the
    /// exact amount).
    pub fn taxable_fen(&self) -> i64 {
        narrow(round_half_up(i128::from(self.taxable_fifths_of_fen), 5))
    }

    /// The deduction as shown beside [`Self::taxable_fen`]: 800 yuan, or income less the shown
    /// taxable amount, so that the two always add up to the income.
    pub fn deduction_fen(&self) -> i64 {
        match self.deduction {
            Deduction::Flat800 => FLAT_DEDUCTION_FEN,
            Deduction::TwentyPercent => self.income_fen - self.taxable_fen(),
        }
    }

    /// The exact taxable amount in yuan, e.g. `3200.008` (a fifth of a fen is 0.002 yuan).
    pub fn taxable_yuan_exact(&self) -> String {
        let thousandths = self.taxable_fifths_of_fen * 2;
        format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
    }

    /// The income less the tax due: what the expert nets over the month.
    pub fn net_fen(&self) -> i64 {
        self.income_fen - self.tax_due_fen
    }
}

/// The tax due on a month's total labour income from one paying bureau, `month_income_fen`
/// (all funds, every payment of the month so far). Income at or below zero owes nothing.
pub fn tax_due(month_income_fen: i64) -> TaxComputation {
    let income = month_income_fen.max(0);
    let (deduction, taxable_fifths) = if income <= FLAT_DEDUCTION_LIMIT_FEN {
        (Deduction::Flat800, i128::from((income - FLAT_DEDUCTION_FEN).max(0)) * 5)
    } else {
        // x 80% = x 4/5: exactly 4 x income fifths of a fen.
        (Deduction::TwentyPercent, i128::from(income) * 4)
    };
    let band = BANDS
        .into_iter()
        .find(|b| b.taxable_up_to_fen.is_none_or(|limit| taxable_fifths <= i128::from(limit) * 5))
        .unwrap_or(BANDS[2]);
    // taxable x rate% - quick, in units of 1/500 fen: (fifths x rate) - quick x 500.
    let exact = taxable_fifths * i128::from(band.rate_percent) - i128::from(band.quick_deduction_fen) * 500;
    TaxComputation {
        income_fen: income,
        deduction,
        taxable_fifths_of_fen: narrow(taxable_fifths),
        band,
        tax_due_fen: narrow(round_half_up(exact.max(0), 500)),
    }
}

/// What the month's income nets the expert after the month's tax.
pub fn net_of_tax(month_income_fen: i64) -> i64 {
    tax_due(month_income_fen).net_fen()
}

/// One payment's withholding: the month's tax recomputed on the cumulative income, less what was
/// already withheld in the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withholding {
    pub tax: TaxComputation,
    pub already_withheld_fen: i64,
    /// `tax.tax_due_fen - already_withheld_fen`. Negative when a correction lowered the month's
    /// income below what earlier payments were taxed on: tax to give back (see
    /// docs/fees-and-tax.md, open questions).
    pub withheld_now_fen: i64,
}

/// The withholding of a payment that brings the month's income from one paying bureau to
/// `month_income_fen` (this payment included), when `already_withheld_fen` was withheld by the
/// month's earlier payments.
pub fn withhold(month_income_fen: i64, already_withheld_fen: i64) -> Withholding {
    let tax = tax_due(month_income_fen);
    Withholding { tax, already_withheld_fen, withheld_now_fen: tax.tax_due_fen - already_withheld_fen }
}

/// The extra gross that raises the expert's net for the month by exactly `extra_net_fen`, when
/// `month_gross_so_far_fen` is already paid or due in the month: the gross-up of an AFTER_TAX fee
/// (D9).
///
/// Method. Let `net(g) = g - tax_due(g)`. The exact tax is continuous in the income (the 800 and
/// 20% deductions meet at 4,000 yuan, the bands meet at 20,000 and 50,000) and rises by at most
/// 0.32 fen per fen (40% of 80%), so the rounded tax rises by 0 or 1 fen for each fen of income:
/// `net` never falls and never skips a fen. Every net amount is therefore reached exactly, and
/// the answer is the smallest month total `g` with `net(g) = net(so_far) + extra_net`, found by
/// bisection on integers (`g` is at most `so_far + 2 x extra_net + 2`, since each fen of extra
/// income nets at least 0.68 fen less one fen of rounding). Returns `g - so_far`. The smallest `g`
/// is taken because, where the rounded tax makes several totals net the same, the bureau should
/// not pay more than it must. A negative `extra_net_fen` (a correction) gives the matching
/// negative gross, never taking the month below zero.
pub fn gross_for_net(month_gross_so_far_fen: i64, extra_net_fen: i64) -> i64 {
    let so_far = month_gross_so_far_fen.max(0);
    let target = net_of_tax(so_far).saturating_add(extra_net_fen);
    if target <= 0 {
        return -so_far;
    }
    // Invariant: net(hi) >= target, and no g in [start, lo) has net(g) >= target. A non-negative
    // extra net never takes gross away, so its search starts at what is already paid.
    let (mut lo, mut hi) = if extra_net_fen >= 0 {
        (so_far, so_far.saturating_add(extra_net_fen.saturating_mul(2)).saturating_add(2))
    } else {
        (0, so_far)
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if net_of_tax(mid) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo - so_far
}

/// `numerator / denominator` rounded half up, for `numerator >= 0` and `denominator > 0`.
fn round_half_up(numerator: i128, denominator: i128) -> i128 {
    (2 * numerator + denominator) / (2 * denominator)
}

/// Back to i64; every value here is at most 4 x an i64 income divided back down, or an amount
/// bounded by the income itself.
fn narrow(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// The withholding formula as one line of text, for statements and logs, e.g.
/// `"(4000.01 x 80% = 3200.008) x 20% - 0.00 = 640.00"`.
pub fn explain(tax: &TaxComputation) -> String {
    let base = match tax.deduction {
        Deduction::Flat800 => format!("(max({} - 800.00, 0) = {})", yuan(tax.income_fen), tax.taxable_yuan_exact()),
        Deduction::TwentyPercent => format!("({} x 80% = {})", yuan(tax.income_fen), tax.taxable_yuan_exact()),
    };
    format!("{base} x {}% - {} = {}", tax.band.rate_percent, yuan(tax.band.quick_deduction_fen), yuan(tax.tax_due_fen))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yuan as written in the tables, to fen.
    fn fen(yuan: &str) -> i64 {
        let (whole, frac) = yuan.split_once('.').unwrap_or((yuan, "0"));
        let whole: i64 = whole.replace(',', "").parse().unwrap();
        let frac = format!("{frac:0<2}");
        whole * 100 + frac.parse::<i64>().unwrap()
    }

    #[test]
    fn every_vector_of_ecosystem_section_12_holds() {
        // income, exact taxable (yuan), withholding (yuan)
        let vectors = [
            ("500", "0.000", "0.00"),
            ("800", "0.000", "0.00"),
            ("1,234.56", "434.560", "86.91"),
            ("3,000", "2200.000", "440.00"),
            ("4,000", "3200.000", "640.00"),
            ("4,000.01", "3200.008", "640.00"),
            ("5,000", "4000.000", "800.00"),
            ("25,000", "20000.000", "4000.00"),
            ("30,000", "24000.000", "5200.00"),
            ("60,000", "48000.000", "12400.00"),
            ("62,500", "50000.000", "13000.00"),
            ("100,000", "80000.000", "25000.00"),
        ];
        for (income, taxable, withholding) in vectors {
            let tax = tax_due(fen(income));
            assert_eq!(tax.taxable_yuan_exact(), taxable, "taxable on {income}");
            assert_eq!(tax.tax_due_fen, fen(withholding), "withholding on {income}");
        }
    }

    #[test]
    fn exactly_4000_yuan_deducts_800_and_one_fen_more_deducts_20_percent() {
        let at = tax_due(400_000);
        assert_eq!(
            (at.deduction, at.deduction_fen(), at.taxable_fen(), at.tax_due_fen),
            (Deduction::Flat800, 80_000, 320_000, 64_000)
        );
        let above = tax_due(400_001);
        assert_eq!(above.deduction, Deduction::TwentyPercent);
        assert_eq!(above.taxable_fifths_of_fen, 1_600_004);
        assert_eq!((above.taxable_fen(), above.deduction_fen(), above.tax_due_fen), (320_001, 80_000, 64_000));
        assert_eq!(explain(&above), "(4000.01 x 80% = 3200.008) x 20% - 0.00 = 640.00");
    }

    #[test]
    fn appendix_a7_1200_yuan_withholds_80_and_nets_1120() {
        let w = withhold(fen("1,200"), 0);
        assert_eq!(w.withheld_now_fen, fen("80"));
        assert_eq!(w.tax.net_fen(), fen("1,120"));
    }

    #[test]
    fn appendix_a8_4800_yuan_withholds_768() {
        let w = withhold(fen("4,800"), 0);
        assert_eq!(w.tax.taxable_fen(), fen("3,840"));
        assert_eq!(w.withheld_now_fen, fen("768"));
    }

    #[test]
    fn income_of_800_or_less_owes_nothing_and_nothing_is_negative() {
        for income in [-10_000, 0, 1, 79_999, 80_000] {
            let tax = tax_due(income);
            assert_eq!((tax.taxable_fifths_of_fen, tax.tax_due_fen), (0, 0), "on {income}");
        }
        assert_eq!(tax_due(80_001).tax_due_fen, 0, "0.01 taxable x 20% = 0.002 rounds to 0");
        assert_eq!(tax_due(80_003).tax_due_fen, 1, "0.03 x 20% = 0.006 rounds to 0.01");
    }

    #[test]
    fn the_bands_meet_at_20000_and_50000_taxable() {
        let at = tax_due(fen("25,000"));
        assert_eq!((at.band.rate_percent, at.tax_due_fen), (20, fen("4,000")));
        let above = tax_due(fen("25,000.01"));
        assert_eq!((above.band.rate_percent, above.tax_due_fen), (30, fen("4,000")));
        let at = tax_due(fen("62,500"));
        assert_eq!((at.band.rate_percent, at.tax_due_fen), (30, fen("13,000")));
        let above = tax_due(fen("62,500.01"));
        assert_eq!((above.band.rate_percent, above.tax_due_fen), (40, fen("13,000")));
    }

    #[test]
    fn the_tax_is_rounded_half_up_once_on_the_exact_amount() {
        // 1,234.56: 434.56 x 20% = 86.912 -> 86.91.
        assert_eq!(tax_due(123_456).tax_due_fen, 8_691);
        // 4,000.03 x 0.8 x 0.2 = 640.0048 -> 640.00; 4,000.04 -> 640.0064 -> 640.01.
        assert_eq!(tax_due(400_003).tax_due_fen, 64_000);
        assert_eq!(tax_due(400_004).tax_due_fen, 64_001);
        // 30,000.02 x 0.8 x 0.3 - 2,000 = 5,200.0048 -> 5,200.00; .03 -> 5,200.0072 -> 5,200.01.
        assert_eq!(tax_due(3_000_002).tax_due_fen, 520_000);
        assert_eq!(tax_due(3_000_003).tax_due_fen, 520_001);
    }

    #[test]
    fn a_month_paid_in_two_batches_withholds_the_difference_on_the_second() {
        // 3,000 in the first batch: (3,000 - 800) x 20% = 440.
        let first = withhold(fen("3,000"), 0);
        assert_eq!(first.withheld_now_fen, fen("440"));
        // 2,000 more in the same month: 5,000 x 80% x 20% = 800 due, 440 already withheld.
        let second = withhold(fen("5,000"), first.withheld_now_fen);
        assert_eq!(second.tax.tax_due_fen, fen("800"));
        assert_eq!(second.withheld_now_fen, fen("360"));
        // Not (2,000 - 800) x 20% = 240, which taxing each batch alone would give.
        assert_ne!(second.withheld_now_fen, withhold(fen("2,000"), 0).withheld_now_fen);
    }

    #[test]
    fn a_correction_that_lowers_the_month_gives_tax_back() {
        let first = withhold(fen("1,200"), 0);
        let corrected = withhold(fen("1,100"), first.withheld_now_fen);
        assert_eq!(corrected.withheld_now_fen, -fen("20"));
    }

    #[test]
    fn the_net_never_falls_and_never_skips_a_fen_as_income_rises() {
        let windows = [0..1_000_000, 2_400_000..2_600_000, 6_150_000..6_350_000, 99_990_000..100_010_000];
        for window in windows {
            let mut previous = net_of_tax(window.start);
            for g in window.start + 1..window.end {
                let net = net_of_tax(g);
                assert!(net - previous == 0 || net - previous == 1, "net({g}) = {net} after {previous}");
                previous = net;
            }
        }
    }

    #[test]
    fn grossing_up_reaches_the_net_exactly_with_the_least_gross() {
        let nets = [
            0, 1, 10_000, 40_000, 80_000, 80_001, 120_000, 336_000, 336_001, 400_000, 1_000_000, 3_000_000, 4_500_000,
            10_000_000,
        ];
        for net in nets {
            let gross = gross_for_net(0, net);
            assert_eq!(net_of_tax(gross), net, "gross {gross} for net {net}");
            assert!(gross == 0 || net_of_tax(gross - 1) < net, "{gross} is the least gross for {net}");
        }
    }

    #[test]
    fn grossing_up_400_yuan_alone_in_a_month_needs_400_yuan() {
        // At most 800 yuan in the month, nothing is withheld.
        assert_eq!(gross_for_net(0, 40_000), 40_000);
        assert_eq!(gross_for_net(0, 80_000), 80_000);
    }

    #[test]
    fn grossing_up_1200_yuan_net_needs_1300_yuan_gross() {
        // g - (g - 800) x 20% = 0.8 g + 160 = 1,200  =>  g = 1,300: (1,300 - 800) x 20% = 100.
        assert_eq!(gross_for_net(0, fen("1,200")), fen("1,300"));
    }

    #[test]
    fn grossing_up_above_4000_follows_the_20_percent_deduction() {
        // g x (1 - 0.16) = 4,200  =>  g = 5,000.
        assert_eq!(gross_for_net(0, fen("4,200")), fen("5,000"));
        // 30% band: g - (0.24 g - 2,000) = 24,800  =>  0.76 g = 22,800  =>  g = 30,000.
        assert_eq!(gross_for_net(0, fen("24,800")), fen("30,000"));
    }

    #[test]
    fn grossing_up_on_top_of_a_paid_batch_raises_the_net_by_exactly_the_amount() {
        let first = gross_for_net(0, fen("1,200"));
        let second = gross_for_net(first, fen("4,000"));
        assert_eq!(net_of_tax(first + second) - net_of_tax(first), fen("4,000"));
        assert_eq!(first + second, gross_for_net(0, fen("5,200")), "the same as grossing up the month at once");
    }

    #[test]
    fn grossing_up_a_negative_correction_lowers_the_gross_to_match() {
        let gross = gross_for_net(0, fen("1,200"));
        let back = gross_for_net(gross, -fen("400"));
        assert_eq!(net_of_tax(gross + back), fen("800"));
        assert_eq!(gross + back, fen("800"));
        assert_eq!(gross_for_net(gross, -fen("5,000")), -gross, "never below zero");
    }
}
