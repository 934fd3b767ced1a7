//! The faults a relay applies, as flags and as control-port settings.

use std::fmt;

/// Which packets a partition drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Partition {
    /// None.
    #[default]
    Off,
    /// All.
    On,
    /// Client to target only.
    Up,
    /// Target to client only.
    Down,
}

impl Partition {
    pub(super) fn blocks(self, dir: Direction) -> bool {
        matches!(
            (self, dir),
            (Partition::On, _)
                | (Partition::Up, Direction::Up)
                | (Partition::Down, Direction::Down)
        )
    }
}

/// The faults applied to every packet, in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Default, clap::Args)]
pub(crate) struct Faults {
    /// Drop packets: `on` (or the bare flag) both ways, `up` client to target, `down` back.
    #[arg(long, value_enum, default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub(crate) partition: Partition,
    /// Probability of dropping a packet, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) loss: f64,
    /// Delay of every packet, each way, in milliseconds.
    #[arg(long = "delay", default_value_t = 0)]
    pub(crate) delay_ms: u64,
    /// Spread of the delay: plus or minus this many milliseconds, uniformly.
    #[arg(long = "jitter", default_value_t = 0)]
    pub(crate) jitter_ms: u64,
    /// Probability of sending a packet twice, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) dup: f64,
    /// Probability of holding a packet back 20 ms so later ones overtake it, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) reorder: f64,
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition={} loss={} delay={} jitter={} dup={} reorder={}",
            clap::ValueEnum::to_possible_value(&self.partition)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
            self.loss,
            self.delay_ms,
            self.jitter_ms,
            self.dup,
            self.reorder
        )
    }
}

pub(super) fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Client to target.
    Up,
    /// Target to client.
    Down,
}
