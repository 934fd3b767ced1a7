//! The table `veto probe` prints after each round: one row per ordered pair,
//! with the seconds to enforcement or `FAILED` and why.

use std::fmt::Write as _;

use super::round::Pair;

/// The round's pairs as a table, columns aligned, ending in a newline.
pub(crate) fn render(pairs: &[Pair]) -> String {
    let width = |header: &str, cell: fn(&Pair) -> &str| {
        pairs
            .iter()
            .map(|p| cell(p).chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let from_width = width("FROM", |p| &p.from);
    let to_width = width("TO", |p| &p.to);
    let mut out = String::new();
    let _ = writeln!(out, "{:<from_width$}  {:<to_width$}  SECONDS", "FROM", "TO");
    for p in pairs {
        let result = match &p.outcome {
            // Milliseconds matter on one network, and seconds across regions.
            Ok(took) => format!("{:.4}", took.as_secs_f64()),
            Err(why) => format!("FAILED  {why}"),
        };
        let _ = writeln!(
            out,
            "{:<from_width$}  {:<to_width$}  {result}",
            p.from, p.to
        );
    }
    out
}

/// The failed pairs, as `from -> to`, for the one-line error of `--once`.
pub(crate) fn failed_pairs(pairs: &[Pair]) -> Vec<String> {
    pairs
        .iter()
        .filter(|p| p.outcome.is_err())
        .map(|p| format!("{} -> {}", p.from, p.to))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pair(from: &str, to: &str, outcome: Result<Duration, String>) -> Pair {
        Pair {
            from: from.into(),
            to: to.into(),
            outcome,
        }
    }

    #[test]
    fn rows_are_aligned_and_say_why_a_pair_failed() {
        let pairs = [
            pair("us-east", "eu-west", Ok(Duration::from_millis(42))),
            pair("us-east", "gateway", Err("not enforced within 2 s".into())),
        ];
        let table = render(&pairs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "FROM     TO       SECONDS");
        assert_eq!(lines[1], "us-east  eu-west  0.0420");
        assert_eq!(
            lines[2],
            "us-east  gateway  FAILED  not enforced within 2 s"
        );
        assert_eq!(failed_pairs(&pairs), ["us-east -> gateway"]);
    }
}
