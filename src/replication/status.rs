//! Publishing what the driver knows of each peer to the peer directory, and to
//! per-peer metrics.

use std::collections::BTreeMap;

use veto_api::PeerView;
use veto_gossip::engine::{Engine, PeerKey};
use veto_transport::{ConnId, PeerState, Transport};

use crate::peers::PeerDirectory;

/// A connected node's name and certificate fingerprint (both from its
/// certificate) and its per-peer counters, resolved once per connection
/// rather than on every frame.
pub(crate) struct PeerConn {
    pub(crate) name: String,
    pub(crate) cert_sha256: [u8; 32],
    pub(crate) messages_in: metrics::Counter,
    pub(crate) bytes_in: metrics::Counter,
    pub(crate) messages_out: metrics::Counter,
    pub(crate) bytes_out: metrics::Counter,
}

impl PeerConn {
    pub(crate) fn new(name: String, cert_sha256: [u8; 32]) -> PeerConn {
        let counter = |metric: &'static str, direction: &'static str| metrics::counter!(metric, "direction" => direction, "peer" => name.clone());
        PeerConn {
            messages_in: counter("veto_peer_messages_total", "in"),
            bytes_in: counter("veto_peer_bytes_total", "in"),
            messages_out: counter("veto_peer_messages_total", "out"),
            bytes_out: counter("veto_peer_bytes_total", "out"),
            name,
            cert_sha256,
        }
    }
}

/// Connected nodes by connection.
pub(crate) type Names = BTreeMap<ConnId, PeerConn>;

fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Connected => "connected",
        PeerState::Dialing => "connecting",
        PeerState::Backoff => "down",
        PeerState::Myself => "self",
    }
}

/// Refreshes every peer view from the transport and the engine.
pub(crate) fn publish(
    directory: &PeerDirectory,
    transport: &Transport,
    engine: &Engine,
    names: &Names,
) {
    let stats = engine.stats();
    metrics::counter!("veto_gossip_records_relayed_total").absolute(stats.relayed);
    metrics::counter!("veto_gossip_records_regrafted_total").absolute(stats.regrafted);
    let dialled = transport.peers();
    let mut seen = Vec::new();
    let view_of = |conn: Option<ConnId>, view: &mut PeerView| {
        let Some(conn) = conn else {
            view.rtt_ms = None;
            view.cwnd_bytes = None;
            view.lost_packets = None;
            return;
        };
        if let Some(stats) = engine.peer_stats(PeerKey(conn.0)) {
            view.lag = stats.lag.unwrap_or(0);
            view.last_contact = stats.last_contact.map(|d| d.as_secs());
        }
        if let Some(conn_stats) = transport.stats(conn) {
            view.rtt_ms = Some(conn_stats.rtt.as_secs_f64() * 1e3);
            view.cwnd_bytes = Some(conn_stats.cwnd);
            view.lost_packets = Some(conn_stats.lost_packets);
        }
        if let Some(peer) = names.get(&conn) {
            view.name = Some(peer.name.clone());
        }
    };
    directory.refresh(|views, membership| {
        for view in views.iter_mut() {
            let status = dialled
                .iter()
                .find(|p| p.addr.to_string() == view.view.addr || view.resolved.contains(&p.addr));
            // Only what a certificate proved: the name the transport last
            // saw in a handshake at this address, or none.
            view.view.name = status.and_then(|s| s.name.clone());
            let refused = membership
                .listing(&view.view.addr)
                .is_some_and(|l| l.refused.is_some());
            match status {
                // This node refused its last dial there: its certificate is
                // revoked, its name removed, or not the name it is listed as.
                Some(s) if refused && s.conn.is_none_or(|c| !names.contains_key(&c)) => {
                    view.view.state = "refused".to_owned();
                    view_of(None, &mut view.view);
                }
                Some(s) => {
                    view.view.state = state_name(s.state).to_owned();
                    if let Some(conn) = s.conn {
                        seen.push(conn);
                    }
                    view_of(s.conn, &mut view.view);
                }
                None => view.view.state = "connecting".to_owned(),
            }
        }
    });
    // Peers that dialled this node without being configured here are shown too:
    // an operator should see every node this one exchanges records with.
    let inbound: Vec<PeerView> = transport
        .connections()
        .into_iter()
        // Only connections the driver admitted: a refused one lives on for
        // a moment until the transport closes it.
        .filter(|(conn, _)| !seen.contains(conn) && names.contains_key(conn))
        .map(|(conn, stats)| {
            let mut view = PeerView {
                name: Some(stats.peer_name.clone()),
                listed_as: None,
                addr: stats.remote.to_string(),
                state: "connected".to_owned(),
                lag: 0,
                rtt_ms: None,
                cwnd_bytes: None,
                lost_packets: None,
                last_contact: None,
            };
            view_of(Some(conn), &mut view);
            view
        })
        .collect();
    directory.set_inbound(inbound);
}

/// `veto_origin_staleness_seconds{origin}`, by the origin's node name (its
/// writer id changes at every restart; its name does not). An origin of
/// which nothing is known yet reads as +Inf, so that an alert on staleness
/// fires for it too.
pub(crate) fn publish_staleness(origins: &[veto_core::receipt::OriginView]) {
    for o in origins {
        metrics::gauge!("veto_origin_staleness_seconds", "origin" => o.name.clone())
            .set(o.staleness_s.unwrap_or(f64::INFINITY));
    }
}
