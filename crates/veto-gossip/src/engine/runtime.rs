//! The edge between the engine and whatever runs it: the four things a
//! driver does for the engine (the way foca's `Runtime` is), and the one
//! dispatch of [`Output`]s onto them that every driver shares (the node's
//! QUIC driver, the simulator, the engine's test harness).

use veto_core::{Frontier, Record};

use super::output::{EngineEvent, Frame, Lane, Output, PeerKey, PersistId};
use crate::proto::MessageKind;

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
