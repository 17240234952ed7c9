//! 月度结算 — settling one payment to an expert by one paying bureau in a payment month (D9):
//! the gross (with AFTER_TAX fees grossed up), the withholding on the month's cumulative income
//! across funds, and the net. The monthly statement is the sum of the month's payments; a later
//! batch in the same month recomputes the month's tax and withholds the difference.

use super::{
    fees::FeeBasis,
    tax::{Withholding, gross_for_net, withhold},
};

/// What the month already holds for this expert and paying bureau, all funds: the batches
/// approved or paid earlier in the payment month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthSoFar {
    pub gross_fen: i64,
    pub withheld_fen: i64,
}

impl MonthSoFar {
    /// The month after `payment` is added.
    pub fn after(self, payment: &Payment) -> Self {
        Self {
            gross_fen: self.gross_fen + payment.gross_fen,
            withheld_fen: self.withheld_fen + payment.withholding.withheld_now_fen,
        }
    }
}

/// The fee lines of one payment, summed by basis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentAmounts {
    /// PRE_TAX lines: gross fees.
    pub pre_tax_fen: i64,
    /// AFTER_TAX lines: what the expert must net.
    pub after_tax_net_fen: i64,
}

impl PaymentAmounts {
    /// Sums lines (charges and reversals alike) given as their basis and amount.
    pub fn of(lines: impl IntoIterator<Item = (FeeBasis, i64)>) -> Self {
        lines.into_iter().fold(Self::default(), |mut sum, (basis, amount)| {
            match basis {
                FeeBasis::PreTax => sum.pre_tax_fen += amount,
                FeeBasis::AfterTax => sum.after_tax_net_fen += amount,
            }
            sum
        })
    }
}

/// One expert's payment in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    /// The PRE_TAX lines' gross.
    pub pre_tax_fen: i64,
    /// The gross paid for the AFTER_TAX lines, their net grossed up.
    pub after_tax_gross_fen: i64,
    /// Everything paid gross: the two above.
    pub gross_fen: i64,
    /// The month's tax on the cumulative income, and what this payment withholds.
    pub withholding: Withholding,
    /// Paid to the expert: gross less the tax withheld now.
    pub net_fen: i64,
}

/// Settles a payment of `amounts` when the month already holds `so_far`.
///
/// PRE_TAX lines are paid at their amount. AFTER_TAX lines are grossed up on top of everything
/// else in the month ([`gross_for_net`]): the gross that raises the expert's month net by exactly
/// their amount. The tax is then recomputed on the month's cumulative gross and this payment
/// withholds what the month has not yet withheld. So when the earlier payments withheld what was
/// due on them, the expert receives exactly the AFTER_TAX amount for those lines, and the PRE_TAX
/// lines less the tax they add.
pub fn settle_payment(so_far: MonthSoFar, amounts: PaymentAmounts) -> Payment {
    let gross_before_after_tax = so_far.gross_fen + amounts.pre_tax_fen;
    let after_tax_gross_fen = if amounts.after_tax_net_fen == 0 {
        0
    } else {
        gross_for_net(gross_before_after_tax, amounts.after_tax_net_fen)
    };
    let gross_fen = amounts.pre_tax_fen + after_tax_gross_fen;
    let withholding = withhold(so_far.gross_fen + gross_fen, so_far.withheld_fen);
    Payment {
        pre_tax_fen: amounts.pre_tax_fen,
        after_tax_gross_fen,
        gross_fen,
        withholding,
        net_fen: gross_fen - withholding.withheld_now_fen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre_tax(fen: i64) -> PaymentAmounts {
        PaymentAmounts { pre_tax_fen: fen, after_tax_net_fen: 0 }
    }

    fn after_tax(fen: i64) -> PaymentAmounts {
        PaymentAmounts { pre_tax_fen: 0, after_tax_net_fen: fen }
    }

    #[test]
    fn appendix_a7_a_month_of_1200_yuan_nets_1120() {
        let p = settle_payment(MonthSoFar::default(), pre_tax(120_000));
        assert_eq!((p.gross_fen, p.withholding.withheld_now_fen, p.net_fen), (120_000, 8_000, 112_000));
    }

    #[test]
    fn two_funds_in_one_month_are_one_income_for_tax() {
        // 800 yuan from the provincial fund, then 800 from the city/county fund, same bureau and
        // month: 1,600 yuan, (1,600 - 800) x 20% = 160, all of it on the second batch.
        let provincial = settle_payment(MonthSoFar::default(), pre_tax(80_000));
        assert_eq!(provincial.withholding.withheld_now_fen, 0);
        let month = MonthSoFar::default().after(&provincial);
        let city_county = settle_payment(month, pre_tax(80_000));
        assert_eq!(city_county.withholding.tax.income_fen, 160_000);
        assert_eq!(city_county.withholding.withheld_now_fen, 16_000);
        assert_eq!(month.after(&city_county), MonthSoFar { gross_fen: 160_000, withheld_fen: 16_000 });
    }

    #[test]
    fn the_second_batch_of_a_month_withholds_the_difference() {
        let first = settle_payment(MonthSoFar::default(), pre_tax(300_000));
        assert_eq!(first.withholding.withheld_now_fen, 44_000);
        let second = settle_payment(MonthSoFar::default().after(&first), pre_tax(200_000));
        assert_eq!(second.withholding.tax.tax_due_fen, 80_000);
        assert_eq!(second.withholding.withheld_now_fen, 36_000);
        assert_eq!(second.net_fen, 164_000);
    }

    #[test]
    fn a_late_correction_is_income_of_the_month_it_is_paid_in() {
        // April's 400 yuan is reversed in May, with May's 1,600 yuan of new lines: May's income is
        // 1,200 yuan.
        let lines = [(FeeBasis::PreTax, 160_000), (FeeBasis::PreTax, -40_000)];
        let may = settle_payment(MonthSoFar::default(), PaymentAmounts::of(lines));
        assert_eq!((may.gross_fen, may.withholding.withheld_now_fen, may.net_fen), (120_000, 8_000, 112_000));
    }

    #[test]
    fn after_tax_fees_net_the_expert_exactly_the_rate() {
        // 12 class hours at 100 yuan, AFTER_TAX: the expert must net 1,200 yuan.
        let p = settle_payment(MonthSoFar::default(), after_tax(120_000));
        assert_eq!((p.gross_fen, p.withholding.withheld_now_fen, p.net_fen), (130_000, 10_000, 120_000));
    }

    #[test]
    fn after_tax_fees_paid_in_two_batches_net_exactly_each_time() {
        let first = settle_payment(MonthSoFar::default(), after_tax(120_000));
        let month = MonthSoFar::default().after(&first);
        let second = settle_payment(month, after_tax(400_000));
        // The month must net 5,200: the least gross is 6,190.48 (tax 990.4768 -> 990.48).
        assert_eq!((second.gross_fen, second.withholding.withheld_now_fen, second.net_fen), (489_048, 89_048, 400_000));
        let month = month.after(&second);
        // The month as a whole is the gross-up of 5,200 yuan net.
        let whole = settle_payment(MonthSoFar::default(), after_tax(520_000));
        assert_eq!(month, MonthSoFar { gross_fen: whole.gross_fen, withheld_fen: whole.withholding.withheld_now_fen });
    }

    #[test]
    fn after_tax_lines_are_grossed_up_on_top_of_pre_tax_lines_of_the_same_month() {
        // An edition change in mid-month: 800 yuan PRE_TAX, then 400 yuan AFTER_TAX.
        let amounts = PaymentAmounts::of([(FeeBasis::PreTax, 80_000), (FeeBasis::AfterTax, 40_000)]);
        let p = settle_payment(MonthSoFar::default(), amounts);
        // 800 nets 800; the extra 400 net needs 500 gross: (1,300 - 800) x 20% = 100.
        assert_eq!((p.after_tax_gross_fen, p.gross_fen, p.withholding.withheld_now_fen), (50_000, 130_000, 10_000));
        assert_eq!(p.net_fen, 120_000);
    }

    #[test]
    fn payment_amounts_sum_charges_and_reversals_by_basis() {
        let sums = PaymentAmounts::of([
            (FeeBasis::PreTax, 40_000),
            (FeeBasis::AfterTax, 30_000),
            (FeeBasis::PreTax, -10_000),
            (FeeBasis::AfterTax, 0),
        ]);
        assert_eq!(sums, PaymentAmounts { pre_tax_fen: 30_000, after_tax_net_fen: 30_000 });
    }
}
