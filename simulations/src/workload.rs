//! The clients: random revocations of every scope at random nodes, and checks
//! at random nodes, some aimed at a record revoked earlier (probes), some at
//! random tokens.
//!
//! Keys come from small universes (a few issuers, hundreds of subjects), so
//! that records overlap: several cutoffs for one subject, the same session
//! revoked twice at two nodes, and so on.

use rand::Rng;
use veto_core::{Check, Claims, Record, RecordId, Revocation, Target};

use crate::params::WorkloadParams;
use crate::rng::SimRng;

const ISSUERS: [&str; 3] = [
    "https://idp-a.example",
    "https://idp-b.example",
    "https://login.example.com",
];
const SUBJECTS: u32 = 500;
const CLIENTS: u32 = 40;
const KEYS: u32 = 16;
const REASONS: [&str; 4] = ["logout", "compromised", "offboarding", "password-change"];
const ACTORS: [&str; 3] = ["svc-auth", "admin@example.com", "soc-bot"];

/// The plainest check a record revokes: its own keys and issuer, and a token
/// issued one second before a cutoff.
pub(crate) fn exact_probe(record: &Record) -> CheckSpec {
    let mut c = Claims {
        iss: record.target.iss().map(str::to_owned),
        iat: record.target.before().map(|b| b.saturating_sub(1)),
        ..Claims::default()
    };
    match &record.target {
        Target::Token { jti, .. } => c.jti = Some(jti.clone()),
        Target::TokenHash { sha256 } => c.token_sha256 = Some(*sha256),
        Target::Session { sid, .. } => c.sid = Some(sid.clone()),
        Target::Subject { sub, .. } => c.sub = Some(sub.clone()),
        Target::Client { client_id, .. } => c.client_id = Some(client_id.clone()),
        Target::Issuer { .. } => {}
        Target::Key { kid, .. } => c.kid = Some(kid.clone()),
        // The workload makes no `peer` records: they revoke no token, and the
        // simulated network carries no certificates to refuse.
        Target::Peer { .. } => {}
    }
    CheckSpec {
        claims: c,
        probe: Some(record.id),
    }
}

/// A check a client makes: owned claims ([`Claims::as_check`] borrows them),
/// and the record it is aimed at, for a probe.
#[derive(Clone, Debug, Default)]
pub(crate) struct CheckSpec {
    pub(crate) claims: Claims,
    /// The record this check is aimed at, for a probe.
    pub(crate) probe: Option<RecordId>,
}

impl CheckSpec {
    pub(crate) fn as_check(&self) -> Check<'_> {
        self.claims.as_check()
    }
}

pub(crate) struct Workload {
    pub(crate) p: WorkloadParams,
    pub(crate) rng: SimRng,
    counter: u64,
}

impl Workload {
    pub(crate) fn new(p: WorkloadParams, rng: SimRng) -> Workload {
        Workload { p, rng, counter: 0 }
    }

    fn issuer(&mut self) -> String {
        ISSUERS[self.rng.gen_range(0..ISSUERS.len())].to_owned()
    }

    /// An issuer, or none (a record that matches any issuer) one time in five.
    fn maybe_issuer(&mut self) -> Option<String> {
        (!self.rng.gen_bool(0.2)).then(|| self.issuer())
    }

    /// How many records the next request revokes.
    pub(crate) fn request_size(&mut self) -> usize {
        if self.p.max_batch > 1 && self.rng.gen_bool(self.p.batch_prob) {
            self.rng.gen_range(2..=self.p.max_batch)
        } else {
            1
        }
    }

    /// A random revocation made at local time `now_secs`.
    pub(crate) fn revocation(&mut self, now_secs: u64) -> Revocation {
        self.counter += 1;
        let n = self.counter;
        let before = now_secs.saturating_sub(self.rng.gen_range(0..600));
        let target = match self.rng.gen_range(0..100) {
            0..=44 => Target::Token {
                iss: self.maybe_issuer(),
                jti: format!("jti-{n}-{:x}", self.rng.gen::<u32>()),
            },
            45..=54 => Target::opaque_token(&format!("opaque-{n}-{:x}", self.rng.gen::<u64>())),
            55..=69 => Target::Session {
                iss: self.maybe_issuer(),
                sid: format!("sid-{}", self.rng.gen_range(0..4 * SUBJECTS)),
            },
            70..=81 => Target::Subject {
                iss: self.maybe_issuer(),
                sub: format!("user-{}", self.rng.gen_range(0..SUBJECTS)),
                before,
            },
            82..=89 => Target::Client {
                iss: self.maybe_issuer(),
                client_id: format!("client-{}", self.rng.gen_range(0..CLIENTS)),
                before,
            },
            90..=93 => Target::Issuer {
                iss: self.issuer(),
                before,
            },
            _ => Target::Key {
                iss: self.maybe_issuer(),
                kid: format!("kid-{}", self.rng.gen_range(0..KEYS)),
            },
        };
        let (lo, hi) = if self.rng.gen_bool(self.p.short_lived) {
            self.p.short_life_s
        } else {
            self.p.long_life_s
        };
        Revocation {
            target,
            expires_at: now_secs + self.rng.gen_range(lo..=hi.max(lo)),
            reason: REASONS[self.rng.gen_range(0..REASONS.len())].to_owned(),
            actor: ACTORS[self.rng.gen_range(0..ACTORS.len())].to_owned(),
        }
    }

    /// A check aimed at `record`: it must come out revoked wherever the record
    /// is held.
    pub(crate) fn probe(&mut self, record: &Record) -> CheckSpec {
        let mut c = Claims::default();
        let iss = |w: &mut Workload, iss: &Option<String>| match iss {
            Some(i) => Some(i.clone()),
            None => w.maybe_issuer(),
        };
        let iat = |w: &mut Workload, before: u64| {
            (!w.rng.gen_bool(0.1)).then(|| before.saturating_sub(w.rng.gen_range(1..3600)))
        };
        match &record.target {
            Target::Token { iss: i, jti } => {
                c.iss = iss(self, i);
                c.jti = Some(jti.clone());
            }
            Target::TokenHash { sha256 } => c.token_sha256 = Some(*sha256),
            Target::Session { iss: i, sid } => {
                c.iss = iss(self, i);
                c.sid = Some(sid.clone());
            }
            Target::Subject {
                iss: i,
                sub,
                before,
            } => {
                c.iss = iss(self, i);
                c.sub = Some(sub.clone());
                c.iat = iat(self, *before);
            }
            Target::Client {
                iss: i,
                client_id,
                before,
            } => {
                c.iss = iss(self, i);
                c.client_id = Some(client_id.clone());
                c.iat = iat(self, *before);
            }
            Target::Issuer { iss: i, before } => {
                c.iss = Some(i.clone());
                c.iat = iat(self, *before);
            }
            Target::Key { iss: i, kid } => {
                c.iss = iss(self, i);
                c.kid = Some(kid.clone());
            }
            // Never made by the workload (see `exact_probe`).
            Target::Peer { .. } => {}
        }
        CheckSpec {
            claims: c,
            probe: Some(record.id),
        }
    }

    /// A check of a token with random claims, revoked or not.
    pub(crate) fn random_check(&mut self, now_secs: u64) -> CheckSpec {
        let mut c = Claims {
            iss: self.maybe_issuer(),
            iat: Some(now_secs.saturating_sub(self.rng.gen_range(0..1800))),
            ..Claims::default()
        };
        if self.rng.gen_bool(0.7) {
            c.sub = Some(format!("user-{}", self.rng.gen_range(0..SUBJECTS)));
        }
        if self.rng.gen_bool(0.5) {
            c.sid = Some(format!("sid-{}", self.rng.gen_range(0..4 * SUBJECTS)));
        }
        if self.rng.gen_bool(0.5) {
            c.client_id = Some(format!("client-{}", self.rng.gen_range(0..CLIENTS)));
        }
        if self.rng.gen_bool(0.5) {
            c.kid = Some(format!("kid-{}", self.rng.gen_range(0..KEYS)));
        }
        if self.rng.gen_bool(0.5) {
            c.jti = Some(format!("jti-{}", self.rng.gen::<u32>()));
        }
        if self.rng.gen_bool(0.1) {
            c.iat = None;
        }
        CheckSpec {
            claims: c,
            probe: None,
        }
    }
}
