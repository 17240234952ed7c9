//! Money is integer fen (分) everywhere; it becomes yuan text only in files people read.

/// `fen` as yuan with two decimals, e.g. `123456` -> `1234.56`, `-5` -> `-0.05`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn fen_print_as_yuan() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(10_000), "100.00");
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }
}
