//! Queuing what the engine sends: every message is encoded here, once.

use super::{clip, Engine, EngineEvent, Frame, Lane, Now, Output, PeerKey, RecordSource};
use crate::proto::{self, FrontierSummary, Message, MessageKind};

impl Engine {
    pub(super) fn send_frontier(
        &mut self,
        now: Now,
        peer: PeerKey,
        src: &(impl RecordSource + ?Sized),
    ) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.digest_sent = false;
        session.sent_blind = session.their.is_none();
        let clock = session.clock.sample(now);
        let summary = FrontierSummary::of(&self.durable);
        let mut holdings = src.holdings();
        holdings.truncate(proto::MAX_SUMMARY_RANGES);
        let (indirect, expected) = self.source_hints(now, peer);
        let reports = self.frontier_reports(now, peer, false);
        let direct = self.direct_for(now, peer);
        let msg = Message::Frontier {
            summary,
            holdings,
            clock,
            indirect,
            expected,
            reports,
            direct,
        };
        self.send(peer, msg, Lane::Urgent);
    }

    /// Encodes a message and queues it, counting it against the peer.
    pub(super) fn send(&mut self, peer: PeerKey, msg: Message, lane: Lane) {
        if let Some(frame) = self.encode(peer, &msg) {
            self.send_frame(peer, frame, lane, msg.message_kind());
        }
    }

    /// Encodes a message once, for one or more peers. `None` (reported as an
    /// event) if it does not encode.
    pub(super) fn encode(&mut self, peer: PeerKey, msg: &Message) -> Option<Frame> {
        match proto::encode(msg) {
            Ok(bytes) => Some(Frame::new(bytes)),
            Err(e) => {
                self.event(EngineEvent::Unencodable {
                    peer,
                    kind: msg.message_kind(),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Queues an encoded message, counting it against the peer.
    pub(super) fn send_frame(
        &mut self,
        peer: PeerKey,
        frame: Frame,
        lane: Lane,
        kind: MessageKind,
    ) {
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.stats.messages_out += 1;
            session.stats.bytes_out += frame.len() as u64;
        }
        self.outputs.push_back(Output::Send {
            peer,
            frame,
            lane,
            kind,
        });
    }

    pub(super) fn event(&mut self, event: EngineEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Closes a connection that broke the protocol, telling the peer why.
    pub(super) fn violation(&mut self, peer: PeerKey, reason: String) {
        self.stats.violations += 1;
        let reason = clip(&reason);
        self.send(
            peer,
            Message::Goodbye {
                reason: reason.clone(),
            },
            Lane::Urgent,
        );
        self.close(peer, reason);
    }

    pub(super) fn close(&mut self, peer: PeerKey, reason: String) {
        self.undesignate(peer);
        self.echoes.forget(peer);
        if self.sessions.remove(&peer).is_some() {
            self.outputs.push_back(Output::Close { peer, reason });
            self.update_verdict();
        }
    }
}
