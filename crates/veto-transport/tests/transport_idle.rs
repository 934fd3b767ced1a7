//! An idle, connected transport must cost next to nothing: no busy polling.
//! Alone in its own test binary so other tests do not pollute the measurement.

mod transport_support;

use std::time::{Duration, Instant};

use transport_support::*;
use veto_transport::{Transport, TransportConfig};

/// User plus system CPU time of this process, from /proc (in clock ticks of
/// 10 ms on Linux).
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connected_pair_uses_almost_no_cpu() {
    let cluster = Cluster::new();
    // Production settings: 2 s keep-alives, 10 s idle timeout.
    let (a, mut a_rx) = Transport::bind(TransportConfig::new(localhost(), cluster.tls("alpha")))
        .await
        .unwrap();
    let (b, mut b_rx) = Transport::bind(TransportConfig::new(localhost(), cluster.tls("beta")))
        .await
        .unwrap();
    a.add_peer(b.local_addr());
    b.add_peer(a.local_addr());
    connected(&mut a_rx).await;
    connected(&mut b_rx).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (cpu_before, wall_before) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    eprintln!("idle pair: {cpu:?} CPU in {wall:?}");
    // Both nodes together, against a budget of 1% of a core each.
    assert!(
        cpu.as_secs_f64() < 0.02 * wall.as_secs_f64(),
        "idle pair used {cpu:?} of CPU in {wall:?}"
    );
    assert_eq!((a.connections().len(), b.connections().len()), (1, 1));
    a.shutdown().await;
    b.shutdown().await;
}
