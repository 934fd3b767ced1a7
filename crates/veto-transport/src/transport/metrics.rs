//! Prometheus metrics (through the `metrics` facade) and the in-process totals.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, gauge, Counter, Gauge};

use super::{Lane, TransportTotals};

/// Metric handles, made once so the per-frame path does no label lookups.
pub(crate) struct Metrics {
    frames_in: [Counter; 2],
    frames_out: [Counter; 2],
    bytes_in: [Counter; 2],
    bytes_out: [Counter; 2],
    queue_full: [Counter; 2],
    /// Datagrams in and out, and their bytes, under `lane="datagram"`.
    datagrams: [Counter; 4],
    connected: Gauge,
    dialing: Gauge,
    backoff: Gauge,
}

fn per_lane(name: &'static str, direction: &'static str) -> [Counter; 2] {
    Lane::ALL.map(|lane| counter!(name, "direction" => direction, "lane" => lane.as_str()))
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            frames_in: per_lane("veto_gossip_frames_total", "in"),
            frames_out: per_lane("veto_gossip_frames_total", "out"),
            bytes_in: per_lane("veto_gossip_bytes_total", "in"),
            bytes_out: per_lane("veto_gossip_bytes_total", "out"),
            queue_full: Lane::ALL
                .map(|lane| counter!("veto_gossip_send_queue_full_total", "lane" => lane.as_str())),
            datagrams: [
                ("veto_gossip_frames_total", "in"),
                ("veto_gossip_bytes_total", "in"),
                ("veto_gossip_frames_total", "out"),
                ("veto_gossip_bytes_total", "out"),
            ]
            .map(|(name, dir)| counter!(name, "direction" => dir, "lane" => "datagram")),
            connected: gauge!("veto_gossip_connections", "state" => "connected"),
            dialing: gauge!("veto_gossip_connections", "state" => "dialing"),
            backoff: gauge!("veto_gossip_connections", "state" => "backoff"),
        }
    }

    pub(crate) fn frame_in(&self, lane: Lane, len: usize) {
        self.frames_in[lane.index()].increment(1);
        self.bytes_in[lane.index()].increment(len as u64);
    }

    pub(crate) fn frames_out(&self, lane: Lane, frames: u64, bytes: u64) {
        self.frames_out[lane.index()].increment(frames);
        self.bytes_out[lane.index()].increment(bytes);
    }

    pub(crate) fn datagram_in(&self, len: usize) {
        self.datagrams[0].increment(1);
        self.datagrams[1].increment(len as u64);
    }

    pub(crate) fn datagram_out(&self, len: usize) {
        self.datagrams[2].increment(1);
        self.datagrams[3].increment(len as u64);
    }

    pub(crate) fn queue_full(&self, lane: Lane) {
        self.queue_full[lane.index()].increment(1);
    }

    pub(crate) fn states(&self, connected: usize, dialing: usize, backoff: usize) {
        self.connected.set(connected as f64);
        self.dialing.set(dialing as f64);
        self.backoff.set(backoff as f64);
    }
}

/// Counters kept in process, so tests and status need no metrics recorder.
#[derive(Default)]
pub(crate) struct Totals {
    pub(crate) frame_errors: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Totals {
    pub(crate) fn frame_error(&self, kind: &'static str) {
        self.frame_errors.fetch_add(1, Ordering::Relaxed);
        counter!("veto_gossip_frame_errors_total", "kind" => kind).increment(1);
    }

    pub(crate) fn handshake_failure(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
        counter!("veto_gossip_handshake_failures_total").increment(1);
    }

    pub(crate) fn dial_failure(&self) {
        self.dial_failures.fetch_add(1, Ordering::Relaxed);
        counter!("veto_gossip_dial_failures_total").increment(1);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
        counter!("veto_gossip_duplicate_connections_total").increment(1);
    }

    /// The node refused a peer; it counts the refusal in its own metric,
    /// with the reason, so only the total is kept here.
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, tls_rejected: u64) -> TransportTotals {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportTotals {
            tls_rejected,
            frame_errors: get(&self.frame_errors),
            handshake_failures: get(&self.handshake_failures),
            dial_failures: get(&self.dial_failures),
            connections: get(&self.connections),
            duplicates: get(&self.duplicates),
            refused: get(&self.refused),
        }
    }
}
