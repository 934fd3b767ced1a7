//! Connection lifecycle: when a side of a connection learns it is dead, and
//! when a node pair is dialled again.

use rand::Rng;
use veto_gossip::engine::PeerKey;

use super::{key_of, Conn, Net, NetEffect};
use crate::sched::{Event, Queue, Time};

impl Net {
    /// Re-derives the timers of both sides of `conn` after anything changed.
    pub(super) fn evaluate(&mut self, q: &mut Queue, now: Time, conn_id: u64) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let (ends, open) = (conn.ends, conn.open);
        if !open[0] && !open[1] {
            self.remove(q, now, conn_id);
            return;
        }
        let idle = self.ms(self.t.idle_timeout_ms);
        let keep_alive = self.ms(self.t.keep_alive_ms);
        for s in 0..2 {
            if !open[s] {
                continue;
            }
            let (me, other) = (ends[s], ends[1 - s]);
            let hearing = open[1 - s] && self.open_path(other, me);
            let both_ways = self.open_path(other, me) && self.open_path(me, other);
            let reset = !open[1 - s] && self.alive[other] && both_ways;
            let reset_at = now + self.rng.gen_range(0..=keep_alive) + self.rtt(me, other);
            let conn = self.conns.get_mut(&conn_id).expect("looked up above");
            if hearing {
                conn.silent_since[s] = None;
            } else if conn.silent_since[s].is_none() {
                conn.silent_since[s] = Some(now);
                q.push(
                    now + idle,
                    Event::SideCheck {
                        conn: conn_id,
                        side: s as u8,
                    },
                );
            }
            if reset && conn.doom_at[s].is_none() {
                conn.doom_at[s] = Some(reset_at);
                q.push(
                    reset_at,
                    Event::SideCheck {
                        conn: conn_id,
                        side: s as u8,
                    },
                );
            }
        }
    }

    /// A side's idle timeout or reset notice may be due.
    pub(crate) fn side_check(
        &mut self,
        q: &mut Queue,
        now: Time,
        conn_id: u64,
        side: usize,
        out: &mut Vec<NetEffect>,
    ) {
        let idle = self.ms(self.t.idle_timeout_ms);
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let due = conn.open[side]
            && (conn.silent_since[side].is_some_and(|t| now >= t + idle)
                || conn.doom_at[side].is_some_and(|t| now >= t));
        if !due {
            return;
        }
        out.push(NetEffect::Lost {
            node: conn.ends[side],
            key: key_of(conn_id, side),
        });
        self.close_side(q, now, conn_id, side);
    }

    fn close_side(&mut self, q: &mut Queue, now: Time, conn_id: u64, side: usize) {
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.open[side] = false;
            conn.stalled[side].clear();
            self.stats.disconnections += 1;
        }
        self.evaluate(q, now, conn_id);
    }

    /// The engine at the side `key` closed the connection: the other side
    /// hears of it after the frames already on their way.
    pub(crate) fn engine_close(&mut self, q: &mut Queue, now: Time, key: PeerKey) {
        let (conn_id, side) = (key.0 / 2, (key.0 % 2) as usize);
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        if !conn.open[side] {
            return;
        }
        let (a, b) = (conn.ends[side], conn.ends[1 - side]);
        if conn.open[1 - side] && self.open_path(a, b) {
            let at = (now + self.one_way(a, b)).max(conn.last_arrival[side]) + 1;
            let conn = self.conns.get_mut(&conn_id).expect("looked up above");
            conn.doom_at[1 - side] = Some(at);
            q.push(
                at,
                Event::SideCheck {
                    conn: conn_id,
                    side: (1 - side) as u8,
                },
            );
        }
        self.close_side(q, now, conn_id, side);
    }

    fn remove(&mut self, q: &mut Queue, now: Time, conn_id: u64) {
        let Some(conn) = self.conns.remove(&conn_id) else {
            return;
        };
        let min = self.ms(self.t.backoff_min_ms);
        let max = self.ms(self.t.backoff_max_ms);
        let stable = self.ms(self.t.stable_ms);
        let pair = &mut self.pairs[conn.pair];
        pair.conn = None;
        if now.saturating_sub(conn.up_at) >= stable {
            pair.backoff = min;
        }
        let backoff = pair.backoff;
        pair.backoff = (backoff * 2).min(max);
        let wait = self.jittered(backoff);
        self.schedule_dial(q, conn.pair, now + wait);
    }

    fn schedule_dial(&mut self, q: &mut Queue, pair: usize, at: Time) {
        let p = &mut self.pairs[pair];
        if p.conn.is_some() || p.connecting || p.next_dial.is_some_and(|t| t <= at) {
            return;
        }
        p.token += 1;
        p.next_dial = Some(at);
        q.push(
            at,
            Event::Dial {
                pair,
                token: p.token,
            },
        );
    }

    fn dial_failed(&mut self, q: &mut Queue, now: Time, pair: usize) {
        self.stats.dial_failures += 1;
        let max = self.ms(self.t.backoff_max_ms);
        let timeout = self.ms(self.t.dial_timeout_ms);
        let p = &mut self.pairs[pair];
        p.connecting = false;
        let backoff = p.backoff;
        p.backoff = (backoff * 2).min(max);
        let wait = self.jittered(backoff);
        self.schedule_dial(q, pair, now + timeout + wait);
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.alive[a] && self.alive[b] && self.open_path(a, b) && self.open_path(b, a)
    }

    /// A dial attempt.
    pub(crate) fn dial(&mut self, q: &mut Queue, now: Time, pair: usize, token: u64) {
        let p = &self.pairs[pair];
        if p.token != token || p.conn.is_some() || p.connecting {
            return;
        }
        let (a, b) = (p.a, p.b);
        self.pairs[pair].next_dial = None;
        if !self.reachable(a, b) {
            return self.dial_failed(q, now, pair);
        }
        // QUIC with TLS 1.3: the client is ready after one RTT, the server
        // half an RTT later; both are counted ready at 1.5 RTT.
        let rtt = self.rtt(a, b);
        let jitter = (rtt as f64 * self.rng.gen_range(0.0..=self.jitter)) as Time;
        let p = &mut self.pairs[pair];
        p.connecting = true;
        p.token += 1;
        let token = p.token;
        q.push(now + rtt * 3 / 2 + jitter, Event::ConnUp { pair, token });
    }

    /// A handshake completes, if both nodes are still there.
    pub(crate) fn conn_up(
        &mut self,
        q: &mut Queue,
        now: Time,
        pair: usize,
        token: u64,
        out: &mut Vec<NetEffect>,
    ) {
        let p = &self.pairs[pair];
        if p.token != token || !p.connecting {
            return;
        }
        let (a, b) = (p.a, p.b);
        if !self.reachable(a, b) {
            return self.dial_failed(q, now, pair);
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                pair,
                ends: [a, b],
                open: [true, true],
                up_at: now,
                lanes: Default::default(),
                silent_since: [None, None],
                doom_at: [None, None],
                stalled: [Vec::new(), Vec::new()],
                last_arrival: [now, now],
                bulk_free: [now, now],
            },
        );
        let p = &mut self.pairs[pair];
        p.connecting = false;
        p.conn = Some(id);
        self.stats.connections += 1;
        out.push(NetEffect::Connected {
            node: a,
            key: key_of(id, 0),
        });
        out.push(NetEffect::Connected {
            node: b,
            key: key_of(id, 1),
        });
    }

    fn conns_of(&self, node: usize) -> Vec<u64> {
        (0..self.n)
            .filter(|&o| o != node)
            .filter_map(|o| self.pairs[self.pair_index(node, o)].conn)
            .collect()
    }

    /// The node crashed: its sides of every connection vanish at once, and
    /// the far sides notice by their idle timeout.
    pub(crate) fn crash(&mut self, q: &mut Queue, now: Time, node: usize) {
        self.alive[node] = false;
        for conn_id in self.conns_of(node) {
            let Some(conn) = self.conns.get(&conn_id) else {
                continue;
            };
            let side = usize::from(conn.ends[1] == node);
            if conn.open[side] {
                self.close_side(q, now, conn_id, side);
            }
        }
    }

    /// The node (re)started: old connections learn it forgot them, and it
    /// dials every peer at once.
    pub(crate) fn start(&mut self, q: &mut Queue, now: Time, node: usize) {
        self.alive[node] = true;
        let min = self.ms(self.t.backoff_min_ms);
        for other in 0..self.n {
            if other == node {
                continue;
            }
            let pair = self.pair_index(node, other);
            match self.pairs[pair].conn {
                Some(conn_id) => self.evaluate(q, now, conn_id),
                None => {
                    self.pairs[pair].backoff = min;
                    let wait = self.jittered(min);
                    self.schedule_dial(q, pair, now + wait);
                }
            }
        }
    }
}
