//! Regions and the round-trip times between them.
//!
//! The figures are approximate public inter-region round-trip times of a large
//! cloud provider (AWS), as shown by its Network Manager "Infrastructure
//! Performance" dashboard and the community CloudPing tables (p50 RTT, in
//! milliseconds, rounded). They drift by a few milliseconds from month to
//! month and are meant as realistic orders of magnitude, not as measurements
//! of any deployment. Within a region (between availability zones) the RTT is
//! about 1 ms.

/// A region the simulator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its name, after the AWS region code.
    pub name: &'static str,
}

/// The regions, in the order of [`RTT_MS`].
pub const REGIONS: [Region; 8] = [
    Region { name: "us-east-1" },
    Region { name: "us-west-2" },
    Region { name: "eu-west-1" },
    Region {
        name: "eu-central-1",
    },
    Region { name: "ap-south-1" },
    Region {
        name: "ap-northeast-1",
    },
    Region { name: "sa-east-1" },
    Region {
        name: "ap-southeast-1",
    },
];

/// Round-trip time in milliseconds between regions `i` and `j` (symmetric).
///
/// Anchors: us-east↔eu-west ~75 ms, us-east↔ap-south ~200 ms (published
/// figures range 190–230), eu-west↔ap-south ~120 ms (110–130), within a
/// region ~1 ms.
pub const RTT_MS: [[f64; 8]; 8] = [
    //  use1   usw2   euw1   euc1   aps1   apne1  sae1   apse1
    [1.0, 65.0, 75.0, 90.0, 200.0, 150.0, 115.0, 215.0], // us-east-1
    [65.0, 1.0, 125.0, 140.0, 220.0, 100.0, 175.0, 165.0], // us-west-2
    [75.0, 125.0, 1.0, 25.0, 120.0, 200.0, 180.0, 170.0], // eu-west-1
    [90.0, 140.0, 25.0, 1.0, 110.0, 225.0, 200.0, 155.0], // eu-central-1
    [200.0, 220.0, 120.0, 110.0, 1.0, 125.0, 300.0, 60.0], // ap-south-1
    [150.0, 100.0, 200.0, 225.0, 125.0, 1.0, 255.0, 70.0], // ap-northeast-1
    [115.0, 175.0, 180.0, 200.0, 300.0, 255.0, 1.0, 325.0], // sa-east-1
    [215.0, 165.0, 170.0, 155.0, 60.0, 70.0, 325.0, 1.0], // ap-southeast-1
];

/// The five regions of the `healthy-5-regions` world: both US coasts, Europe,
/// India and Japan.
pub const FIVE: [usize; 5] = [0, 1, 2, 4, 5];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_symmetric_with_a_fast_diagonal() {
        for (i, row) in RTT_MS.iter().enumerate() {
            assert_eq!(row[i], 1.0);
            for (j, rtt) in row.iter().enumerate() {
                assert_eq!(
                    *rtt, RTT_MS[j][i],
                    "{} {}",
                    REGIONS[i].name, REGIONS[j].name
                );
            }
        }
    }
}
