//! The fault-injecting UDP relay (the `veto-relay` binary), with raw
//! UDP and with the QUIC transport running through it.

#[allow(dead_code)]
#[path = "../../../src/relay/mod.rs"]
mod relay;
mod transport_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use relay::{Faults, Partition, Relay, RelayConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use transport_support::*;
use veto_transport::{Lane, Transport};

fn config(to: SocketAddr, faults: Faults) -> RelayConfig {
    RelayConfig {
        listen: localhost(),
        to,
        control: Some(localhost()),
        seed: Some(1),
        max_queue: 10_000,
        max_clients: 64,
        idle_secs: 60,
        faults,
    }
}

struct Running {
    addr: SocketAddr,
    control: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_relay(config: RelayConfig) -> Running {
    let relay = Relay::bind(config).await.unwrap();
    let addr = relay.local_addr().unwrap();
    let control = relay.control_addr().unwrap();
    Running {
        addr,
        control,
        task: tokio::spawn(relay.serve()),
    }
}

/// Sends one command on a fresh control connection and returns the reply line.
async fn control(addr: SocketAddr, command: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    line.trim_end().to_owned()
}

fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap()
}

/// A UDP server that answers every datagram with the same bytes.
async fn echo_server() -> SocketAddr {
    let socket = UdpSocket::bind(localhost()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn client(relay: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(localhost()).await.unwrap();
    socket.connect(relay).await.unwrap();
    socket
}

/// Every reply that arrives within `window`.
async fn replies(socket: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + window;
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        out.push(buf[..n].to_vec());
    }
    out
}

async fn round_trip(socket: &UdpSocket, payload: &[u8]) -> Option<Duration> {
    let start = Instant::now();
    socket.send(payload).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    assert_eq!(&buf[..n], payload);
    Some(start.elapsed())
}

#[tokio::test]
async fn packets_pass_and_replies_reach_the_right_client() {
    let relay = start_relay(config(echo_server().await, Faults::default())).await;
    let one = client(relay.addr).await;
    let two = client(relay.addr).await;
    one.send(b"from one").await.unwrap();
    two.send(b"from two").await.unwrap();
    assert_eq!(
        replies(&one, Duration::from_millis(300)).await,
        vec![b"from one".to_vec()]
    );
    assert_eq!(
        replies(&two, Duration::from_millis(10)).await,
        vec![b"from two".to_vec()]
    );
    let stats = control(relay.control, "stats").await;
    assert!(stats.starts_with("ok "), "{stats}");
    assert_eq!(stat(&stats, "sessions"), 2);
    assert_eq!((stat(&stats, "up_out"), stat(&stats, "down_out")), (2, 2));
}

#[tokio::test]
async fn a_partition_stops_everything_until_lifted() {
    let relay = start_relay(config(echo_server().await, Faults::default())).await;
    let socket = client(relay.addr).await;
    assert!(round_trip(&socket, b"before").await.is_some());

    for mode in ["on", "up", "down"] {
        let reply = control(relay.control, &format!("partition {mode}")).await;
        assert!(
            reply.starts_with(&format!("ok partition={mode}")),
            "{reply}"
        );
        socket.send(b"during").await.unwrap();
        let got = replies(&socket, Duration::from_millis(300)).await;
        assert!(got.is_empty(), "partition {mode} let {got:?} through");
    }
    let stats = control(relay.control, "stats").await;
    assert_eq!(stat(&stats, "dropped_partition"), 3);

    control(relay.control, "partition off").await;
    assert!(round_trip(&socket, b"after").await.is_some());
}

#[tokio::test]
async fn delay_applies_each_way_and_changes_at_run_time() {
    let faults = Faults {
        delay_ms: 100,
        ..Faults::default()
    };
    let relay = start_relay(config(echo_server().await, faults)).await;
    let socket = client(relay.addr).await;
    let rtt = round_trip(&socket, b"slow").await.unwrap();
    assert!(rtt >= Duration::from_millis(200), "round trip {rtt:?}");

    let reply = control(relay.control, "delay 250 0").await;
    assert!(reply.contains("delay=250 jitter=0"), "{reply}");
    let rtt = round_trip(&socket, b"slower").await.unwrap();
    assert!(rtt >= Duration::from_millis(500), "round trip {rtt:?}");

    // Jitter never takes a packet below delay - jitter.
    control(relay.control, "delay 100 50").await;
    let rtt = round_trip(&socket, b"jittery").await.unwrap();
    assert!(rtt >= Duration::from_millis(100), "round trip {rtt:?}");
}

#[tokio::test]
async fn loss_and_duplication_are_applied() {
    let relay = start_relay(config(echo_server().await, Faults::default())).await;
    let socket = client(relay.addr).await;

    control(relay.control, "loss 1").await;
    for _ in 0..10 {
        socket.send(b"lost").await.unwrap();
    }
    assert!(replies(&socket, Duration::from_millis(300))
        .await
        .is_empty());
    assert_eq!(
        stat(&control(relay.control, "stats").await, "dropped_loss"),
        10
    );

    // Doubled on the way up, each echo doubled on the way down.
    control(relay.control, "loss 0").await;
    control(relay.control, "dup 1").await;
    socket.send(b"twice").await.unwrap();
    let got = replies(&socket, Duration::from_millis(500)).await;
    assert_eq!(got, vec![b"twice".to_vec(); 4]);

    let reply = control(relay.control, "clear").await;
    assert_eq!(
        reply,
        "ok partition=off loss=0 delay=0 jitter=0 dup=0 reorder=0"
    );
    assert_eq!(replies(&socket, Duration::from_millis(10)).await.len(), 0);
    assert!(round_trip(&socket, b"once").await.is_some());
    assert!(replies(&socket, Duration::from_millis(200))
        .await
        .is_empty());
}

#[tokio::test]
async fn packets_held_for_delay_are_bounded() {
    let mut cfg = config(echo_server().await, Faults::default());
    cfg.max_queue = 50;
    cfg.faults.delay_ms = 60_000;
    let relay = start_relay(cfg).await;
    let socket = client(relay.addr).await;
    for i in 0..500u32 {
        socket.send(&i.to_be_bytes()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = control(relay.control, "stats").await;
    assert_eq!(stat(&stats, "queued"), 50, "{stats}");
    assert_eq!(stat(&stats, "overflow"), 450, "{stats}");
}

#[tokio::test]
async fn the_control_port_refuses_bad_commands_and_keeps_the_faults() {
    let relay = start_relay(config(echo_server().await, Faults::default())).await;
    // Several commands on one connection, one reply line each.
    let mut stream = TcpStream::connect(relay.control).await.unwrap();
    stream
        .write_all(b"loss 0.25\nloss 2\nbogus\npartition sideways\ndelay x\nFAULTS\nquit\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut got = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        got.push(line);
    }
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(
        got[0].starts_with("ok ") && got[0].contains("loss=0.25"),
        "{got:?}"
    );
    for line in &got[1..5] {
        assert!(line.starts_with("err "), "{got:?}");
    }
    assert!(got[5].contains("loss=0.25 delay=0"), "{got:?}");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    relay: RelayConfig,
}

#[test]
fn flags_parse() {
    let cli = Cli::try_parse_from([
        "relay",
        "--listen",
        "127.0.0.1:7500",
        "--to",
        "127.0.0.1:7401",
        "--control",
        "127.0.0.1:7499",
        "--partition",
        "--loss",
        "0.05",
        "--delay",
        "50",
        "--jitter",
        "5",
        "--seed",
        "7",
    ])
    .unwrap();
    let r = cli.relay;
    assert_eq!(r.to, "127.0.0.1:7401".parse().unwrap());
    assert_eq!(r.seed, Some(7));
    assert_eq!(r.faults.partition, Partition::On);
    assert_eq!(
        (r.faults.loss, r.faults.delay_ms, r.faults.jitter_ms),
        (0.05, 50, 5)
    );
    assert_eq!(r.faults.dup, 0.0);

    let r = Cli::try_parse_from(["relay", "--listen", "127.0.0.1:1", "--to", "127.0.0.1:2"])
        .unwrap()
        .relay;
    assert_eq!(r.faults, Faults::default());
    assert_eq!(r.control, None);
    for bad in [
        ["--loss", "1.5"],
        ["--partition", "sideways"],
        ["--delay", "-3"],
    ] {
        let args = [
            "relay",
            "--listen",
            "127.0.0.1:1",
            "--to",
            "127.0.0.1:2",
            bad[0],
            bad[1],
        ];
        assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn the_transport_runs_through_the_relay_and_survives_a_partition() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    let relay = start_relay(config(a.local_addr(), Faults::default())).await;
    b.add_peer(relay.addr);

    let (b_conn, name, _) = connected(&mut b_rx).await;
    assert_eq!(name, "alpha");
    let (a_conn, name, _) = connected(&mut a_rx).await;
    assert_eq!(name, "beta");
    b.send(b_conn, Lane::Urgent, Bytes::from_static(b"via relay"))
        .unwrap();
    assert_eq!(
        frame(&mut a_rx).await,
        (a_conn, Lane::Urgent, b"via relay".to_vec())
    );

    // One-way delay shows in frame latency.
    control(relay.control, "delay 150").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sent = Instant::now();
    b.send(b_conn, Lane::Urgent, Bytes::from_static(b"delayed"))
        .unwrap();
    assert_eq!(frame(&mut a_rx).await.2, b"delayed");
    assert!(
        sent.elapsed() >= Duration::from_millis(150),
        "{:?}",
        sent.elapsed()
    );
    control(relay.control, "delay 0").await;

    // A partition: keep-alives stop, both sides time out (1.5 s in these tests).
    let cut = Instant::now();
    control(relay.control, "partition on").await;
    let reason = disconnected(&mut a_rx, a_conn).await;
    assert_eq!(reason, "idle timeout");
    assert_eq!(disconnected(&mut b_rx, b_conn).await, "idle timeout");
    assert!(
        cut.elapsed() < Duration::from_secs(5),
        "{:?}",
        cut.elapsed()
    );

    // Healed: beta's dialler gets through again by itself.
    control(relay.control, "partition off").await;
    let (b_again, _, _) = connected(&mut b_rx).await;
    let (a_again, _, _) = connected(&mut a_rx).await;
    b.send(b_again, Lane::Bulk, Bytes::from(vec![9u8; 100_000]))
        .unwrap();
    let (conn, lane, bytes) = frame(&mut a_rx).await;
    assert_eq!((conn, lane, bytes.len()), (a_again, Lane::Bulk, 100_000));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn nothing_passes_a_relay_that_drops_everything_from_the_start() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = Transport::bind(fast_config(localhost(), cluster.tls("beta")))
        .await
        .unwrap();
    let faults = Faults {
        partition: Partition::On,
        ..Faults::default()
    };
    let relay = start_relay(config(a.local_addr(), faults)).await;
    b.add_peer(relay.addr);
    assert!(drain(&mut a_rx, Duration::from_millis(800))
        .await
        .is_empty());
    assert!(drain(&mut b_rx, Duration::from_millis(10)).await.is_empty());
    let stats = control(relay.control, "stats").await;
    assert!(stat(&stats, "dropped_partition") > 0, "{stats}");
    assert_eq!(stat(&stats, "up_out"), 0, "{stats}");
    a.shutdown().await;
    b.shutdown().await;
}
