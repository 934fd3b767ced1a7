//! A bounded, byte-counted queue of frames waiting to be written on one lane.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// Bookkeeping charged per queued frame on top of its length, so a flood of
/// tiny frames is bounded too.
pub(crate) const FRAME_OVERHEAD: usize = 64;

/// Most bytes handed to one stream write, so a writer returns to check the
/// queue (and the connection) regularly.
const BATCH_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    cost: usize,
    closed: bool,
}

/// Single consumer (the lane's writer), many producers (`Transport::send`).
pub(crate) struct LaneQueue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

pub(crate) enum PushError {
    Full,
    Closed,
}

impl LaneQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        LaneQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent (every
        // update is a single push/pop), so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let cost = frame.len() + FRAME_OVERHEAD;
        {
            let mut state = self.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.cost + cost > self.capacity {
                return Err(PushError::Full);
            }
            state.cost += cost;
            state.frames.push_back(frame);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Waits for frames and moves a batch of them into `out`. Returns false once
    /// the queue is closed.
    pub(crate) async fn pop_batch(&self, out: &mut Vec<Bytes>) -> bool {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                let mut taken = 0;
                while let Some(frame) = state.frames.front() {
                    if taken > 0 && taken + frame.len() > BATCH_BYTES {
                        break;
                    }
                    taken += frame.len();
                    state.cost -= frame.len() + FRAME_OVERHEAD;
                    if let Some(frame) = state.frames.pop_front() {
                        out.push(frame);
                    }
                }
                if !out.is_empty() {
                    return true;
                }
            }
            // notify_one stores a permit when nobody waits, so a push between the
            // unlock above and this await is not missed.
            self.notify.notified().await;
        }
    }

    /// Drops what is queued and refuses further frames.
    pub(crate) fn close(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            state.frames.clear();
            state.cost = 0;
        }
        self.notify.notify_one();
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().cost
    }
}
