//! The edge between the engine and whatever runs it, the one loop every
//! driver runs (the node's QUIC driver, the simulator, the engine's test
//! harness): each input goes in as an [`Input`] through [`Engine::handle`],
//! and [`drain`] carries out every output through the four things a driver
//! does for the engine, its [`Runtime`] (the way foca's is).

use rand::RngCore;
use veto_core::{Frontier, Record};

use super::output::{EngineEvent, Frame, Lane, Output, PeerKey, PersistId};
use super::{Engine, Now, RecordSource};
use crate::proto::MessageKind;

/// One input to the engine, from whatever runs it.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A connection to a peer is up (for QUIC: after mutual TLS).
    Connected(PeerKey),
    /// One frame's payload arrived from a peer.
    Frame {
        /// The connection it came on.
        peer: PeerKey,
        /// The payload, without its length prefix.
        bytes: &'a [u8],
    },
    /// One datagram's payload arrived from a peer (see [`Lane::Datagram`]).
    Datagram {
        /// The connection it came on.
        peer: PeerKey,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A connection is gone.
    Lost(PeerKey),
    /// This node's own records are durable: push them.
    LocalRecords(&'a [Record]),
    /// [`Output::Persist`] `id` finished: durable, or failed.
    Persisted {
        /// The request.
        id: PersistId,
        /// Whether it is durable.
        durable: bool,
    },
    /// The engine's timer ([`Engine::next_timeout`]) is due.
    Tick,
    /// The wall clock stepped against the monotonic clock.
    ClockStepped,
}

impl Engine {
    /// Takes in one input at `now`. Outputs queue up for [`drain`].
    pub fn handle(
        &mut self,
        now: Now,
        input: Input<'_>,
        rng: &mut (impl RngCore + ?Sized),
        src: &(impl RecordSource + ?Sized),
    ) {
        match input {
            Input::Connected(peer) => self.peer_connected(now, peer),
            Input::Frame { peer, bytes } => self.handle_frame(now, peer, bytes, rng, src),
            Input::Datagram { peer, bytes } => self.handle_datagram(now, peer, bytes, src),
            Input::Lost(peer) => self.peer_lost(now, peer),
            Input::LocalRecords(records) => self.local_records(now, records),
            Input::Persisted { id, durable: true } => self.records_durable(now, id),
            Input::Persisted { id, durable: false } => self.persist_failed(now, id),
            Input::Tick => self.tick(now, rng, src),
            Input::ClockStepped => self.clock_stepped(now, src),
        }
        self.flush_reports(now);
    }
}

/// Carries out, in order, every output that `poll` takes from the engine,
/// through `rt`. `poll` gets the runtime so that a runtime that holds the
/// engine (a simulated world of nodes) can reach it between outputs.
pub fn drain<R: Runtime + ?Sized>(mut poll: impl FnMut(&mut R) -> Option<Output>, rt: &mut R) {
    while let Some(output) = poll(rt) {
        dispatch(output, rt);
    }
}

/// What a driver does for the engine. Each method is called in the order the
/// engine output the requests.
pub trait Runtime {
    /// Sends `frame` (one encoded message, `kind`) to `peer` on `lane`.
    fn send(&mut self, peer: PeerKey, frame: Frame, lane: Lane, kind: MessageKind);
    /// Makes `records` durable, covers `cover` and restores `restore`, then
    /// reports [`super::Engine::records_durable`] or
    /// [`super::Engine::persist_failed`] with `id`.
    fn persist(
        &mut self,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
    );
    /// Closes the connection to `peer`, after the sends queued before.
    fn close(&mut self, peer: PeerKey, reason: String);
    /// Logs or counts `event`.
    fn event(&mut self, event: EngineEvent);
}

/// Carries out one output through `rt`.
pub fn dispatch(output: Output, rt: &mut (impl Runtime + ?Sized)) {
    match output {
        Output::Send {
            peer,
            frame,
            lane,
            kind,
        } => rt.send(peer, frame, lane, kind),
        Output::Persist {
            id,
            records,
            cover,
            restore,
        } => rt.persist(id, records, cover, restore),
        Output::Close { peer, reason } => rt.close(peer, reason),
        Output::Event(event) => rt.event(event),
    }
}
