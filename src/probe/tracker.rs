//! Sequence bookkeeping for publish-to-self probes. Pure: the caller passes every timestamp,
//! so loss, duplicates, reordering and late arrivals are unit-tested without a broker.
//!
//! Payload: `mqs1 <nonce:16 hex> <seq:20 digits>` padded with `-` to the configured size. The
//! nonce is random per tracker (per process and probe), so messages from another instance, an
//! earlier run or a stranger on the topic are recognised as foreign, never as success.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const MAGIC: &[u8] = b"mqs1 ";
/// `mqs1 ` + 16 hex + space + 20 digits.
pub const HEADER_LEN: usize = 5 + 16 + 1 + 20;
/// How many recent sequence numbers are remembered to tell duplicates and late arrivals.
const MEMORY: usize = 1024;

/// What an arriving message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Ours, awaited, and newer than everything received before.
    Fresh { seq: u64, rtt: Duration },
    /// Ours and awaited, but an older sequence than one already received.
    OutOfOrder { seq: u64, rtt: Duration },
    /// Ours, already received once.
    Duplicate { seq: u64 },
    /// Ours, but it arrived after its deadline and was counted lost.
    Late { seq: u64 },
    /// Not ours: unparsable, another nonce, or a sequence we never sent.
    Foreign,
}

#[derive(Debug)]
pub struct Tracker {
    nonce: u64,
    payload_len: usize,
    next_seq: u64,
    pending: BTreeMap<u64, Instant>,
    received: BTreeSet<u64>,
    lost: BTreeSet<u64>,
    highest: Option<u64>,
}

pub fn encode(nonce: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut p = format!("mqs1 {nonce:016x} {seq:020}").into_bytes();
    p.resize(len.max(HEADER_LEN), b'-');
    p
}

pub fn decode(payload: &[u8]) -> Option<(u64, u64)> {
    let rest = payload.strip_prefix(MAGIC)?;
    if rest.len() < HEADER_LEN - MAGIC.len() || rest[16] != b' ' {
        return None;
    }
    let nonce = u64::from_str_radix(std::str::from_utf8(&rest[..16]).ok()?, 16).ok()?;
    let seq = std::str::from_utf8(&rest[17..37]).ok()?.parse().ok()?;
    rest[37..]
        .iter()
        .all(|b| *b == b'-')
        .then_some((nonce, seq))
}

fn remember(set: &mut BTreeSet<u64>, seq: u64) {
    set.insert(seq);
    while set.len() > MEMORY {
        set.pop_first();
    }
}

impl Tracker {
    pub fn new(nonce: u64, payload_len: usize) -> Self {
        Self {
            nonce,
            payload_len,
            next_seq: 0,
            pending: BTreeMap::new(),
            received: BTreeSet::new(),
            lost: BTreeSet::new(),
            highest: None,
        }
    }

    /// Register a probe sent at `at`; returns its payload and sequence number.
    pub fn send(&mut self, at: Instant) -> (u64, Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(seq, at);
        (seq, encode(self.nonce, seq, self.payload_len))
    }

    /// Forget an in-flight probe whose publish failed (it was never on the wire).
    pub fn cancel(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    pub fn receive(&mut self, payload: &[u8], at: Instant) -> Arrival {
        let Some((nonce, seq)) = decode(payload) else {
            return Arrival::Foreign;
        };
        if nonce != self.nonce {
            return Arrival::Foreign;
        }
        if let Some(sent) = self.pending.remove(&seq) {
            let rtt = at.saturating_duration_since(sent);
            remember(&mut self.received, seq);
            let newer = self.highest.is_none_or(|h| seq > h);
            if newer {
                self.highest = Some(seq);
                return Arrival::Fresh { seq, rtt };
            }
            return Arrival::OutOfOrder { seq, rtt };
        }
        if self.received.contains(&seq) {
            return Arrival::Duplicate { seq };
        }
        if self.lost.contains(&seq) {
            // Counted once as late; a second copy is a duplicate.
            self.lost.remove(&seq);
            remember(&mut self.received, seq);
            return Arrival::Late { seq };
        }
        Arrival::Foreign
    }

    /// Declare lost every probe sent more than `timeout` before `now`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<u64> {
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, sent)| now.saturating_duration_since(**sent) >= timeout)
            .map(|(s, _)| *s)
            .collect();
        for s in &lost {
            self.pending.remove(s);
            remember(&mut self.lost, *s);
        }
        lost
    }

    /// The session ended: whatever is in flight will not come back on it.
    pub fn abandon(&mut self) -> Vec<u64> {
        let lost: Vec<u64> = self.pending.keys().copied().collect();
        for s in &lost {
            remember(&mut self.lost, *s);
        }
        self.pending.clear();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64, base: Instant) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn payload_round_trip() {
        let p = encode(0xdead_beef, 42, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(decode(&p), Some((0xdead_beef, 42)));
        assert_eq!(
            encode(1, 2, 10).len(),
            HEADER_LEN,
            "never shorter than the header"
        );
        for junk in [
            &b""[..],
            b"hello",
            b"mqs1 zzzzzzzzzzzzzzzz 00000000000000000001",
            &p[..40],
        ] {
            assert_eq!(decode(junk), None);
        }
        let mut tampered = p.clone();
        tampered[60] = b'x';
        assert_eq!(decode(&tampered), None);
    }

    #[test]
    fn fresh_duplicate_out_of_order_late_foreign() {
        let b = Instant::now();
        let mut tr = Tracker::new(7, 64);
        let (s0, p0) = tr.send(t(0, b));
        let (s1, p1) = tr.send(t(10, b));
        let (_s2, p2) = tr.send(t(20, b));
        assert_eq!(
            tr.receive(&p1, t(15, b)),
            Arrival::Fresh {
                seq: s1,
                rtt: Duration::from_millis(5)
            }
        );
        assert_eq!(
            tr.receive(&p0, t(16, b)),
            Arrival::OutOfOrder {
                seq: s0,
                rtt: Duration::from_millis(16)
            }
        );
        assert_eq!(tr.receive(&p1, t(17, b)), Arrival::Duplicate { seq: s1 });
        assert_eq!(
            tr.expire(t(5_019, b), Duration::from_secs(5)),
            Vec::<u64>::new()
        );
        assert_eq!(tr.expire(t(5_020, b), Duration::from_secs(5)), vec![2]);
        assert_eq!(tr.receive(&p2, t(6_000, b)), Arrival::Late { seq: 2 });
        assert_eq!(tr.receive(&p2, t(6_001, b)), Arrival::Duplicate { seq: 2 });
        // another process (nonce), junk, and a sequence never sent
        assert_eq!(tr.receive(&encode(8, 3, 64), t(1, b)), Arrival::Foreign);
        assert_eq!(tr.receive(b"junk", t(1, b)), Arrival::Foreign);
        assert_eq!(tr.receive(&encode(7, 99, 64), t(1, b)), Arrival::Foreign);
    }

    #[test]
    fn abandon_and_cancel() {
        let b = Instant::now();
        let mut tr = Tracker::new(1, 32);
        let (s0, _) = tr.send(b);
        let (s1, p1) = tr.send(b);
        tr.cancel(s0);
        assert_eq!(tr.abandon(), vec![s1]);
        assert_eq!(tr.receive(&p1, b), Arrival::Late { seq: s1 });
        // memory stays bounded
        for i in 0..5_000u64 {
            let (_, p) = tr.send(t(i, b));
            tr.receive(&p, t(i, b));
        }
        assert!(tr.received.len() <= MEMORY);
    }
}
