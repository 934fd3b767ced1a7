//! The replication task: one loop that feeds the engine and carries out what it
//! asks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use tokio::sync::mpsc;
use veto_core::{Frontier, NodeId, Record, ScopeKind};
use veto_gossip::engine::{
    drain, Config, Engine, EngineEvent, Frame, Input, Lane as EngineLane, Now, PeerKey, PersistId,
    Runtime, Via,
};
use veto_gossip::proto::MessageKind;
use veto_transport::tls::{ClusterTls, TlsFiles};
use veto_transport::{
    Admission, ConnId, Lane, PeerIdentity, Transport, TransportConfig, TransportEvent,
};

use super::status::{self, Names, PeerConn};
use crate::clock_steps::StepDetector;
use crate::node::{wall_clock, Node};
use crate::peers::{PeerCommand, PeerDirectory};
use veto_node::{Holdings, PeerCert, Refusal};

/// What the replication task needs from the node's settings.
pub(crate) struct ReplicationSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) tls: TlsFiles,
    pub(crate) anti_entropy_period: Duration,
    pub(crate) gc_grace: Duration,
    pub(crate) max_clock_offset: Duration,
}

/// Counts a refused peer in `veto_peer_refused_total{reason}` and logs why.
fn count_refusal(refusal: &Refusal, dialed: bool) {
    tracing::warn!(dialed, reason = refusal.reason(), error = %refusal, "peer refused");
    metrics::counter!("veto_peer_refused_total", "reason" => refusal.reason()).increment(1);
}

/// The transport's admission: membership (veto-node's rules) over the
/// `peer` records this node holds and its peer list, asked right after
/// every handshake.
fn admission(node: Arc<Node>, directory: Arc<PeerDirectory>) -> Admission {
    Admission::new(move |peer: &PeerIdentity, dialed: Option<SocketAddr>| {
        let cert = PeerCert {
            name: &peer.name,
            sha256: &peer.cert_sha256,
        };
        node.with_revoked_peers(|revoked| directory.admit(revoked, &cert, dialed))
            .map_err(|refusal| {
                count_refusal(&refusal, dialed.is_some());
                refusal.to_string()
            })
    })
}

/// Loads the TLS identity and binds the QUIC endpoint.
async fn bind(
    settings: &ReplicationSettings,
    admission: Admission,
) -> anyhow::Result<(Transport, mpsc::Receiver<TransportEvent>)> {
    let tls = ClusterTls::load(&settings.tls).context("cannot load the TLS identity")?;
    let mut config = TransportConfig::new(settings.listen, tls);
    config.admission = admission;
    Transport::bind(config)
        .await
        .context("cannot start the QUIC transport")
}

/// Starts replication for `node`: binds QUIC, dials the configured peers, and
/// spawns the driver task.
pub(crate) async fn start(
    node: Arc<Node>,
    settings: ReplicationSettings,
    directory: Arc<PeerDirectory>,
    local_records: mpsc::UnboundedReceiver<Vec<Record>>,
    commands: mpsc::UnboundedReceiver<PeerCommand>,
) -> anyhow::Result<SocketAddr> {
    let admission = admission(Arc::clone(&node), Arc::clone(&directory));
    let (transport, events) = bind(&settings, admission).await?;
    let local_addr = transport.local_addr();
    let info = veto_api::Backend::node(node.as_ref());
    let mut config = Config::new(info.id, info.name.clone(), info.region.clone());
    config.anti_entropy_period = settings.anti_entropy_period;
    config.gc_grace = settings.gc_grace;
    config.max_clock_offset = settings.max_clock_offset;
    node.faults().configure(&mut config);
    let frontier = node
        .store()
        .covered()
        .context("cannot read the covered frontier")?;
    let engine = Engine::with_clock(config, frontier, node.clock_handle());
    for addr in directory.addrs() {
        dial(&transport, &directory, &addr).await;
    }
    let (persisted_tx, persisted_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        node,
        engine,
        transport,
        directory,
        rng: StdRng::from_entropy(),
        started: Instant::now(),
        names: Names::new(),
        cut: BTreeSet::new(),
        regions: BTreeMap::new(),
        persisted_tx,
        reports_version: 0,
    };
    tokio::spawn(driver.run(events, local_records, commands, persisted_rx));
    Ok(local_addr)
}

/// Resolves a configured `host:port` and tells the transport to keep dialling it.
async fn dial(transport: &Transport, directory: &PeerDirectory, addr: &str) {
    match tokio::net::lookup_host(addr).await {
        Ok(resolved) => {
            let resolved: Vec<SocketAddr> = resolved.take(1).collect();
            // Known before the first dial's handshake asks whose address it is.
            directory.set_resolved(addr, resolved.clone());
            for a in &resolved {
                transport.add_peer(*a);
            }
        }
        Err(e) => {
            tracing::warn!(peer = addr, error = %e, "cannot resolve peer address; it stays configured")
        }
    }
}

struct Driver {
    node: Arc<Node>,
    engine: Engine,
    transport: Transport,
    directory: Arc<PeerDirectory>,
    rng: StdRng,
    /// The origin of the engine's monotonic clock.
    started: Instant,
    /// Node names by connection, from the peers' handshakes.
    names: Names,
    /// Connections this node closed because their peer is refused now: what
    /// still arrives on them before they are gone is not taken in.
    cut: BTreeSet<ConnId>,
    /// Regions by node id, for labelling propagation latency.
    regions: BTreeMap<NodeId, String>,
    /// A persist's id, whether it is durable, and whether it held `peer`
    /// records (then connections are checked against them).
    persisted_tx: mpsc::UnboundedSender<(PersistId, bool, bool)>,
    /// The engine's reports as last handed to the node.
    reports_version: u64,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<TransportEvent>,
        mut local_records: mpsc::UnboundedReceiver<Vec<Record>>,
        mut commands: mpsc::UnboundedReceiver<PeerCommand>,
        mut persisted: mpsc::UnboundedReceiver<(PersistId, bool, bool)>,
    ) {
        let mut publish = tokio::time::interval(Duration::from_millis(500));
        let mut steps = StepDetector::new(self.engine.config().max_clock_offset / 2);
        loop {
            let timeout = self
                .engine
                .next_timeout()
                .map(|t| t.saturating_sub(self.started.elapsed()));
            let sleep = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                biased;
                Some(records) = local_records.recv() => {
                    self.feed(Input::LocalRecords(&records));
                    if has_peer_records(&records) {
                        self.close_refused();
                    }
                }
                Some((id, durable, peers)) = persisted.recv() => {
                    self.feed(Input::Persisted { id, durable });
                    if peers {
                        self.close_refused();
                    }
                }
                event = events.recv() => match event {
                    Some(event) => self.on_transport(event),
                    None => {
                        tracing::error!("the QUIC transport stopped; replication is off");
                        return;
                    }
                },
                Some(command) = commands.recv() => self.on_command(command).await,
                () = sleep => self.feed(Input::Tick),
                _ = publish.tick() => {
                    if let Some(step) = steps.observe() {
                        tracing::warn!(step_ms = step, "the wall clock stepped; measuring the peers' clocks again");
                        metrics::counter!("veto_clock_steps_total").increment(1);
                        self.feed(Input::ClockStepped);
                    }
                    status::publish(&self.directory, &self.transport, &self.engine, &self.names);
                    self.node.set_clock_check(self.engine.clock_check());
                    status::publish_staleness(&self.node.enforcement().watermarks());
                }
            }
        }
    }

    /// Gives the engine one input, then carries out what it asks.
    fn feed(&mut self, input: Input<'_>) {
        let now = self.now();
        let node = Arc::clone(&self.node);
        self.engine.handle(now, input, &mut self.rng, node.store());
        drain(|d: &mut Driver| d.engine.poll_output(), self);
        let reports = self.engine.reports();
        if reports.version() != self.reports_version {
            // At once: a revoke waiting for its receipt wakes on this.
            self.reports_version = reports.version();
            let mut holdings = Holdings::new(self.engine.config().node);
            holdings.reports = reports.snapshot();
            node.enforcement().publish(holdings);
        }
    }

    /// The time on the engine's two clocks.
    fn now(&self) -> Now {
        Now::new(self.started.elapsed(), wall_clock())
    }

    /// Why the peer with this certificate must not stay connected, if it
    /// must not: a `peer` record or a removal that came after its handshake.
    fn refusal(&self, name: &str, sha256: &[u8; 32]) -> Option<Refusal> {
        let cert = PeerCert { name, sha256 };
        self.node
            .with_revoked_peers(|revoked| self.directory.refusal(revoked, &cert))
    }

    /// Closes every connection whose peer is refused now: run as soon as a
    /// `peer` record is durable here, local or received, whether or not
    /// this node ever talked to the revoked node.
    fn close_refused(&mut self) {
        let refused: Vec<(ConnId, Refusal)> = self
            .names
            .iter()
            .filter_map(|(conn, p)| Some((*conn, self.refusal(&p.name, &p.cert_sha256)?)))
            .collect();
        for (conn, refusal) in refused {
            count_refusal(&refusal, false);
            self.cut(conn, &refusal.to_string());
        }
    }

    /// Closes `conn` and ignores whatever else arrives on it; the engine
    /// hears of its loss when the transport reports it gone.
    fn cut(&mut self, conn: ConnId, reason: &str) {
        self.cut.insert(conn);
        self.transport.close(conn, reason);
    }

    fn on_transport(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Connected {
                conn,
                peer_name,
                cert_sha256,
                remote,
                dialed,
            } => {
                // Admitted after the handshake; a record or a removal may
                // have come since, before the connection reached here.
                if let Some(refusal) = self.refusal(&peer_name, &cert_sha256) {
                    tracing::warn!(%conn, %remote, "refused after its handshake");
                    count_refusal(&refusal, dialed);
                    self.cut(conn, &refusal.to_string());
                    return;
                }
                tracing::info!(%conn, peer = %peer_name, %remote, dialed, "peer connected");
                metrics::gauge!("veto_peer_connected", "peer" => peer_name.clone()).set(1.0);
                self.names
                    .insert(conn, PeerConn::new(peer_name, cert_sha256));
                self.feed(Input::Connected(PeerKey(conn.0)));
            }
            TransportEvent::Frame { conn, bytes, .. } => {
                if self.cut.contains(&conn) {
                    return;
                }
                if let Some(p) = self.names.get(&conn) {
                    p.messages_in.increment(1);
                    p.bytes_in.increment(bytes.len() as u64);
                }
                self.feed(Input::Frame {
                    peer: PeerKey(conn.0),
                    bytes: &bytes,
                });
            }
            TransportEvent::Datagram { conn, bytes } => {
                if self.cut.contains(&conn) {
                    return;
                }
                if let Some(p) = self.names.get(&conn) {
                    p.bytes_in.increment(bytes.len() as u64);
                }
                self.feed(Input::Datagram {
                    peer: PeerKey(conn.0),
                    bytes: &bytes,
                });
            }
            TransportEvent::Disconnected { conn, reason } => {
                self.cut.remove(&conn);
                let Some(peer) = self.names.remove(&conn).map(|p| p.name) else {
                    // A refused connection: the engine never saw it.
                    return;
                };
                tracing::info!(%conn, peer = %peer, reason = %reason, "peer disconnected");
                metrics::gauge!("veto_peer_connected", "peer" => peer).set(0.0);
                self.feed(Input::Lost(PeerKey(conn.0)));
            }
        }
    }

    async fn on_command(&mut self, command: PeerCommand) {
        match command {
            PeerCommand::Add(addr) => {
                tracing::info!(peer = %addr, "peer added");
                dial(&self.transport, &self.directory, &addr).await;
            }
            PeerCommand::Remove {
                addr,
                resolved,
                name,
            } => {
                tracing::info!(peer = %addr, name = name.as_deref(), "peer removed");
                for a in resolved {
                    self.transport.remove_peer(a);
                }
                // Whichever side dialled: a connection it made to us goes too.
                let under_name: Vec<ConnId> = self
                    .names
                    .iter()
                    .filter(|(_, p)| Some(&p.name) == name.as_ref())
                    .map(|(conn, _)| *conn)
                    .collect();
                for conn in under_name {
                    self.cut(conn, "removed from this node's peer list");
                }
            }
        }
    }

    fn on_event(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::PeerUp {
                peer,
                node,
                name,
                region,
            } => {
                tracing::info!(conn = %ConnId(peer.0), %node, %name, %region, "peer handshake complete");
                self.regions.insert(node, region);
            }
            EngineEvent::Received {
                via,
                new,
                duplicates,
                expired,
                restored,
                conflicts,
                ..
            } => {
                let via = match via {
                    Via::Push => "push",
                    Via::Repair => "repair",
                    Via::Echo => "echo",
                };
                metrics::counter!("veto_gossip_records_received_total", "kind" => "new", "via" => via).increment(new as u64);
                metrics::counter!("veto_gossip_records_received_total", "kind" => "duplicate", "via" => via)
                    .increment(duplicates as u64);
                metrics::counter!("veto_gossip_records_received_total", "kind" => "expired", "via" => via)
                    .increment(expired as u64);
                metrics::counter!("veto_gossip_records_received_total", "kind" => "restored", "via" => via)
                    .increment(restored as u64);
                metrics::counter!("veto_gossip_records_received_total", "kind" => "conflict", "via" => via)
                    .increment(conflicts as u64);
                if via == "repair" {
                    metrics::counter!("veto_anti_entropy_records_repaired_total")
                        .increment(new as u64);
                }
            }
            EngineEvent::ClockAhead {
                peer,
                record,
                ahead,
                limit,
            } => {
                tracing::warn!(
                    conn = %ConnId(peer.0), %record, ahead_ms = ahead.as_millis() as u64, limit_ms = limit.as_millis() as u64,
                    "a peer's stamp is ahead of our clock beyond the limit; record stored, clock not advanced"
                );
                metrics::counter!("veto_clock_offset_rejections_total").increment(1);
            }
            EngineEvent::PropagationLatency {
                origin, latency, ..
            } => {
                let region = self
                    .regions
                    .get(&origin)
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_owned());
                metrics::histogram!("veto_propagation_seconds", "origin_region" => region)
                    .record(latency.as_secs_f64());
            }
            EngineEvent::Conflict { peer, record } => {
                tracing::error!(
                    conn = %ConnId(peer.0), %record,
                    "a peer sent a different record under an id stored here: refused, the stored one stays \
                     (an origin reused a sequence number)"
                );
                metrics::counter!("veto_record_conflicts_total").increment(1);
            }
            EngineEvent::ClockVerdict(check) => {
                let offset_ms = check.offset_ns.map(|ns| ns / 1_000_000);
                match check.verdict {
                    veto_gossip::engine::ClockVerdict::Skewed => {
                        tracing::error!(
                        ?offset_ms, peers_off = check.off, peers_measured = check.peers,
                        "this node's clock disagrees with its peers' beyond the maximum offset: \
                         garbage collection and bulk revocations stop until it agrees"
                    )
                    }
                    verdict => tracing::info!(
                        ?offset_ms,
                        peers_measured = check.peers,
                        verdict = verdict.as_str(),
                        "clock compared with peers"
                    ),
                }
                self.node.set_clock_check(check);
            }
            EngineEvent::Unencodable { peer, kind, error } => {
                tracing::error!(conn = %ConnId(peer.0), kind = kind.as_str(), %error, "cannot encode a message; not sent");
            }
            EngineEvent::DatagramDropped { peer, reason } => {
                tracing::debug!(conn = %ConnId(peer.0), reason, "datagram dropped");
                metrics::counter!("veto_gossip_datagrams_dropped_total").increment(1);
            }
            EngineEvent::BatchTimedOut { peer, batch_id } => {
                tracing::warn!(conn = %ConnId(peer.0), batch_id, "a backlog batch was not acknowledged in time; resending");
                metrics::counter!("veto_gossip_batch_timeouts_total").increment(1);
            }
        }
    }
}

impl Driver {
    /// Sends a copy of a push as a datagram. A copy that cannot go is only
    /// counted: the urgent lane carries the push itself.
    fn send_datagram(&mut self, conn: ConnId, frame: Frame) {
        let len = frame.len() as u64;
        match self.transport.send_datagram(conn, Bytes::from_owner(frame)) {
            Ok(()) => {
                if let Some(p) = self.names.get(&conn) {
                    p.bytes_out.increment(len);
                }
            }
            Err(e) => {
                let reason = match e {
                    veto_transport::SendError::DatagramTooLarge { .. } => "too_large",
                    _ => "closed",
                };
                metrics::counter!("veto_gossip_datagrams_unsent_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(%conn, error = %e, "push copy not sent");
            }
        }
    }
}

/// The driver carries out the engine's outputs: frames onto QUIC, persists
/// onto a blocking thread (reporting back through `persisted_tx`), closes and
/// events into logs and metrics.
impl Runtime for Driver {
    fn send(&mut self, peer: PeerKey, frame: Frame, lane: EngineLane, kind: MessageKind) {
        let conn = ConnId(peer.0);
        let len = frame.len() as u64;
        let lane = match lane {
            EngineLane::Urgent => Lane::Urgent,
            EngineLane::Bulk => Lane::Bulk,
            EngineLane::Datagram => return self.send_datagram(conn, frame),
        };
        // The engine shares one push's bytes among all peers: no copy here.
        match self.transport.send(conn, lane, Bytes::from_owner(frame)) {
            Ok(()) => {
                if let Some(p) = self.names.get(&conn) {
                    p.messages_out.increment(1);
                    p.bytes_out.increment(len);
                }
                if matches!(kind, MessageKind::Frontier | MessageKind::Digest) {
                    let message = if kind == MessageKind::Digest {
                        "digest"
                    } else {
                        "frontier"
                    };
                    metrics::counter!("veto_anti_entropy_rounds_total", "message" => message)
                        .increment(1);
                }
            }
            // The engine repairs whatever is dropped here on its next round.
            Err(e) => {
                let name = self
                    .names
                    .get(&conn)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                metrics::counter!("veto_gossip_send_dropped_total", "peer" => name).increment(1);
                tracing::debug!(%conn, error = %e, kind = kind.as_str(), "frame not sent");
            }
        }
    }

    fn persist(
        &mut self,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
    ) {
        let node = Arc::clone(&self.node);
        let done = self.persisted_tx.clone();
        let peers = has_peer_records(&records) || has_peer_records(&restore);
        tokio::task::spawn_blocking(move || {
            let stored = node.store_remote(&records, &cover, &restore);
            if let Err(e) = &stored {
                tracing::error!(error = %e, records = records.len(), "cannot store records from a peer");
            }
            let _ = done.send((id, stored.is_ok(), peers));
        });
    }

    fn close(&mut self, peer: PeerKey, reason: String) {
        tracing::warn!(conn = %ConnId(peer.0), peer = self.names.get(&ConnId(peer.0)).map(|p| p.name.as_str()), %reason, "closing peer connection");
        self.transport.close(ConnId(peer.0), &reason);
    }

    fn event(&mut self, event: EngineEvent) {
        self.on_event(event);
    }
}

/// Whether any of `records` revokes a peer certificate.
fn has_peer_records(records: &[Record]) -> bool {
    records.iter().any(|r| r.target.kind() == ScopeKind::Peer)
}
