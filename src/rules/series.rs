//! The sample history the rule engine reads: label sets, series and a small in-memory store.
//!
//! One [`Storage`] serves both callers: the live engine appends a snapshot of our own registry
//! every evaluation (and a stale marker for every series that vanished, as a Prometheus scrape
//! does), and `rules test` loads promtool's `input_series`. Nothing here knows PromQL.

use rustc_hash::{FxHashMap, FxHashSet};
use std::fmt;
use std::sync::Arc;

/// Prometheus' staleness marker: a NaN with a distinct bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

pub const METRIC_NAME: &str = "__name__";

/// A label set sorted by name, without empty values (an empty value means "absent").
///
/// Cheap to clone (one reference count); names and values are shared `Arc<str>`s, interned
/// by [`Storage`] so 50 000 series carrying `instance="…"` hold the string once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[(Arc<str>, Arc<str>)]>);

impl Labels {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self::from_arcs(
            pairs
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }

    fn from_arcs(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Labels(pairs.into())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_arcs(
            pairs
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    pub fn get(&self, name: &str) -> &str {
        match self.find(name) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    pub fn name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets (or with an empty value, removes) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        let found = self.find(name);
        if found.is_err() && value.is_empty() {
            return;
        }
        let mut v: Vec<(Arc<str>, Arc<str>)> = self.0.to_vec();
        match found {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].1 = Arc::from(value),
            Err(i) => v.insert(i, (Arc::from(name), Arc::from(value))),
        }
        self.0 = v.into();
    }

    /// These labels without `__name__` (when `drop_name`) and with `sets` applied in order
    /// (an empty value removes the label), in one rebuild.
    pub fn rebuilt(&self, drop_name: bool, sets: &[(Arc<str>, Arc<str>)]) -> Labels {
        let mut v: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(self.0.len() + sets.len());
        v.extend(
            self.0
                .iter()
                .filter(|(k, _)| !(drop_name && &**k == METRIC_NAME))
                .cloned(),
        );
        for (k, val) in sets {
            match v.binary_search_by(|(n, _)| (**n).cmp(k)) {
                Ok(i) if val.is_empty() => {
                    v.remove(i);
                }
                Ok(i) => v[i].1 = val.clone(),
                Err(_) if val.is_empty() => {}
                Err(i) => v.insert(i, (k.clone(), val.clone())),
            }
        }
        Labels(v.into())
    }

    pub fn without_name(&self) -> Labels {
        match self.find(METRIC_NAME) {
            Err(_) => self.clone(),
            // `__name__` sorts before every lower-case name, so it is almost always first:
            // one allocation for the rest.
            Ok(0) => Labels(Arc::from(&self.0[1..])),
            Ok(_) => self.rebuilt(true, &[]),
        }
    }

    /// Only the listed labels.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| **n == **k))
                .cloned()
                .collect(),
        )
    }

    /// All but the listed labels.
    pub fn drop(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| **n == **k))
                .cloned()
                .collect(),
        )
    }

    pub fn into_map(self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl fmt::Display for Labels {
    /// Prometheus' `String()` form: `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        f.write_str(name)?;
        let rest: Vec<_> = self.iter().filter(|(k, _)| *k != METRIC_NAME).collect();
        if rest.is_empty() && !name.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// Asks the CPU to bring the cache line at `p` in: a hint, for memory read soon.
#[inline(always)]
#[allow(unsafe_code)] // the one unsafe block of the crate (lib.rs denies the rest)
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program, whatever `p` is.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Samples per chunk before it is sealed (30 min at a 15 s interval, as Prometheus' head).
const CHUNK_SAMPLES: u16 = 120;

/// A run of samples compressed as in Prometheus' XOR chunks (Gorilla): timestamps as
/// delta-of-delta in 1/16/20/24/68 bits, values XORed with their predecessor. Regular
/// integer-valued series take ~1-2 bytes per sample instead of 16.
#[derive(Debug)]
struct Chunk {
    min_t: i64,
    max_t: i64,
    n: u16,
    /// [`RISING`] and [`CLEAN`], kept while appending: what a window over this chunk may
    /// skip decoding (see [`Series::summary`]).
    flags: u8,
    bits: BitBuf,
}

/// Every sample of the chunk is `>=` the one before it in the series (the previous chunk's
/// last included): no counter reset, no NaN, no stale marker.
pub const RISING: u8 = 1;
/// No stale marker in the chunk.
pub const CLEAN: u8 = 2;

/// What a window holds when only its ends and its length are needed ([`Series::summary`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub first: (i64, f64),
    pub last: (i64, f64),
    pub count: usize,
}

impl Chunk {
    fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            r: BitReader::new(&self.bits.data),
            left: self.n,
            i: 0,
            d: Decoder::default(),
        }
    }
}

impl Chunk {
    /// Calls `f` with every sample in order until it returns `false`: [`ChunkIter`] as one
    /// loop with its state in locals (the range reads of every evaluation spend most of their
    /// time here).
    #[inline]
    fn for_each(&self, mut f: impl FnMut(i64, f64) -> bool) {
        if self.n == 0 {
            return;
        }
        let mut r = BitReader::new(&self.bits.data);
        let mut d = Decoder::default();
        d.step(&mut r, true);
        if !f(d.t, f64::from_bits(d.v)) {
            return;
        }
        for _ in 1..self.n {
            d.step(&mut r, false);
            if !f(d.t, f64::from_bits(d.v)) {
                return;
            }
        }
    }
}

/// A chunk being decoded: `d` holds sample `i - 1`, `r` stands at sample `i`.
struct Pos<'a> {
    r: BitReader<'a>,
    d: Decoder,
    i: u16,
}

impl Pos<'_> {
    #[inline(always)]
    fn step(&mut self) {
        self.d.step(&mut self.r, self.i == 0);
        self.i += 1;
    }

    fn sample(&self) -> (i64, f64) {
        (self.d.t, f64::from_bits(self.d.v))
    }
}

/// Where decoding stood at one sample of a series: the next read of a window that has
/// moved forward starts there instead of at its chunk's start (a rule reads the same
/// windows every evaluation, each a step later). Any cursor of the series is a valid
/// starting point for any later window: it only records what decoding that series gives.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    t: i64,
    v: u64,
    delta: i32,
    /// Bits of the chunk read up to and including this sample.
    bit: u16,
    /// This sample's index in its chunk.
    idx: u8,
    leading: u8,
    trailing: u8,
}

impl Cursor {
    /// Points nowhere: never used.
    pub const NONE: Cursor = Cursor {
        t: i64::MAX,
        v: 0,
        delta: 0,
        bit: 0,
        idx: 0,
        leading: 0,
        trailing: 0,
    };
}

impl Chunk {
    /// Decodes up to the first sample at or after `mint`, leaving it in the returned
    /// position's `d`: from `cur` when that points into this chunk before `mint`, else from
    /// the start. Saves where it stopped in `cur`. `None` when every sample is older.
    fn first_at_or_after(&self, mint: i64, cur: Option<&mut Cursor>) -> Option<Pos<'_>> {
        if self.n == 0 || self.max_t < mint {
            return None;
        }
        let mut p = match cur.as_deref() {
            // Strictly before `mint`: the sample wanted comes after it whatever window the
            // cursor was saved for.
            Some(c) if c.t < mint && c.t >= self.min_t && (c.idx as u16) + 1 < self.n => {
                let mut r = BitReader::new(&self.bits.data);
                r.seek(c.bit as usize);
                Pos {
                    r,
                    d: Decoder {
                        t: c.t,
                        delta: c.delta as i64,
                        v: c.v,
                        leading: c.leading as u32,
                        trailing: c.trailing as u32,
                    },
                    i: c.idx as u16 + 1,
                }
            }
            _ => {
                let mut p = Pos {
                    r: BitReader::new(&self.bits.data),
                    d: Decoder::default(),
                    i: 0,
                };
                p.step();
                p
            }
        };
        // `max_t >= mint`: a sample at or after `mint` comes before the end.
        while p.d.t < mint && p.i < self.n {
            p.step();
        }
        if let Some(c) = cur {
            let bit = p.r.position();
            *c = match (i32::try_from(p.d.delta), u16::try_from(bit)) {
                (Ok(delta), Ok(bit)) => Cursor {
                    t: p.d.t,
                    v: p.d.v,
                    delta,
                    bit,
                    idx: (p.i - 1) as u8,
                    leading: p.d.leading as u8,
                    trailing: p.d.trailing as u8,
                },
                _ => Cursor::NONE,
            };
        }
        (p.d.t >= mint).then_some(p)
    }
}

/// The state that decoding a chunk carries from one sample to the next.
#[derive(Default)]
struct Decoder {
    t: i64,
    delta: i64,
    v: u64,
    leading: u32,
    trailing: u32,
}

impl Decoder {
    /// Decodes the next sample into `t` and `v` (the first one of a chunk is stored whole).
    #[inline(always)]
    fn step(&mut self, r: &mut BitReader, first: bool) {
        if first {
            self.t = r.read(64) as i64;
            self.v = r.read(64);
            return;
        }
        r.refill();
        // The common cases first, straight from the bit window (at least 57 bits after the
        // refill): the same time step (`0`), then the same value (`0`) or the previous bit
        // window (`10` + significant bits).
        let b = r.buf;
        if b >> 63 == 0 {
            if (b >> 62) & 1 == 0 {
                r.skip(2);
                self.t += self.delta;
                return;
            }
            let sig = 64 - self.leading - self.trailing;
            if (b >> 61) & 1 == 0 && sig <= 54 {
                r.skip(3 + sig);
                self.t += self.delta;
                self.v ^= ((b << 3) >> (64 - sig)) << self.trailing;
                return;
            }
        }
        // Control: 0, 10, 110, 1110 or 1111 — the number of leading ones picks the bucket.
        let ones = ((r.peek(4) as u8) << 4).leading_ones();
        let dod = match ones {
            0 => {
                r.skip(1);
                0
            }
            4 => {
                r.skip(4);
                r.read(64) as i64
            }
            n => {
                let (_, control_len, bits) = DOD_BUCKETS[n as usize - 1];
                r.skip(control_len);
                sign_extend(r.read(bits), bits)
            }
        };
        self.delta += dod;
        self.t += self.delta;
        let ctl = r.peek(2);
        if ctl & 0b10 == 0 {
            r.skip(1);
        } else {
            r.skip(2);
            if ctl & 0b01 != 0 {
                self.leading = r.read(5) as u32;
                let sig = r.read(6) as u32;
                let sig = if sig == 0 { 64 } else { sig };
                self.trailing = 64 - self.leading - sig;
            }
            self.v ^= r.read(64 - self.leading - self.trailing) << self.trailing;
        }
    }
}

/// A bit string, most significant bit first. While open it keeps 16 zero bytes of padding
/// at the end so writes can always touch a whole `u128`.
#[derive(Debug)]
struct BitBuf {
    /// Exactly as long as allocated (a `Vec` would spend 8 more bytes per chunk on a
    /// capacity that always equals the length).
    data: Box<[u8]>,
    /// Bits written (a chunk holds at most 120 samples of at most 147 bits).
    len: u32,
}

const PAD: usize = 16;

impl BitBuf {
    fn new() -> Self {
        BitBuf {
            data: vec![0; PAD + 16].into_boxed_slice(),
            len: 0,
        }
    }

    fn write(&mut self, value: u64, n: u32) {
        if n == 0 {
            return;
        }
        let need = (self.len as usize + n as usize).div_ceil(8) + PAD;
        if self.data.len() < need {
            // Grow by a quarter: the open chunk of every series holds its slack, so the
            // usual doubling would cost up to a byte of slack per byte of samples.
            let grown = (need + need / 4).max(self.data.len() + 32);
            let mut data = std::mem::take(&mut self.data).into_vec();
            data.reserve_exact(grown - data.len());
            data.resize(grown, 0);
            self.data = data.into_boxed_slice();
        }
        let byte = (self.len >> 3) as usize;
        let off = self.len & 7;
        let masked = if n == 64 {
            value
        } else {
            value & ((1u64 << n) - 1)
        };
        let w = (masked as u128) << (128 - n - off);
        let cur = read_u128(&self.data, byte);
        self.data[byte..byte + 16].copy_from_slice(&(cur | w).to_be_bytes());
        self.len += n;
    }

    /// Frees the slack and the padding: a sealed chunk is only read.
    fn seal(&mut self) {
        let mut data = std::mem::take(&mut self.data).into_vec();
        data.truncate(self.len.div_ceil(8) as usize);
        self.data = data.into_boxed_slice();
    }
}

/// 16 bytes from `byte` on, big-endian; missing bytes past the end read as zero (sealed
/// chunks drop their padding).
fn read_u128(data: &[u8], byte: usize) -> u128 {
    if let Some(s) = data.get(byte..byte + 16) {
        let mut b = [0u8; 16];
        b.copy_from_slice(s);
        return u128::from_be_bytes(b);
    }
    let mut b = [0u8; 16];
    let tail = data.get(byte..).unwrap_or(&[]);
    b[..tail.len()].copy_from_slice(tail);
    u128::from_be_bytes(b)
}

/// Reads a [`BitBuf`] most significant bit first through a 64-bit window refilled eight
/// bytes at a time. Bits past the end read as zero (sealed chunks drop their padding).
struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte not yet in `buf`.
    next: usize,
    /// Unread bits, left-aligned; below the `have` valid ones sit either zeros or the very
    /// bits that follow, so OR-ing the next load over them is harmless.
    buf: u64,
    have: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            next: 0,
            buf: 0,
            have: 0,
        }
    }

    /// Continues at bit `bit` of the data (as [`BitReader::position`] gave it).
    fn seek(&mut self, bit: usize) {
        self.next = bit / 8;
        self.buf = 0;
        self.have = 0;
        self.refill();
        self.skip((bit % 8) as u32);
    }

    /// Bits consumed so far.
    fn position(&self) -> usize {
        self.next * 8 - self.have as usize
    }

    /// At least 57 valid bits afterwards.
    #[inline]
    fn refill(&mut self) {
        if self.have > 56 {
            return;
        }
        if let Some(s) = self.data.get(self.next..self.next + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            self.buf |= u64::from_be_bytes(b) >> self.have;
            let bytes = (63 - self.have) >> 3;
            self.next += bytes as usize;
            self.have += bytes << 3;
        } else {
            while self.have <= 56 {
                let b = self.data.get(self.next).copied().unwrap_or(0);
                self.buf |= (b as u64) << (56 - self.have);
                self.next += 1;
                self.have += 8;
            }
        }
    }

    /// The next `n` (1..=56) bits, not consumed.
    #[inline]
    fn peek(&mut self, n: u32) -> u64 {
        if self.have < n {
            self.refill();
        }
        self.buf >> (64 - n)
    }

    /// Consumes `n` bits already seen by [`BitReader::peek`].
    #[inline]
    fn skip(&mut self, n: u32) {
        self.buf = if n == 64 { 0 } else { self.buf << n };
        self.have -= n;
    }

    /// The next `n` (0..=64) bits.
    #[inline]
    fn read(&mut self, n: u32) -> u64 {
        match n {
            0 => 0,
            1..=56 => {
                let v = self.peek(n);
                self.skip(n);
                v
            }
            _ => self.read_long(n),
        }
    }

    #[cold]
    fn read_long(&mut self, n: u32) -> u64 {
        let hi = self.peek(32);
        self.skip(32);
        let lo = self.peek(n - 32);
        self.skip(n - 32);
        (hi << (n - 32)) | lo
    }
}

/// Delta-of-delta buckets: (control bits, control length, payload bits).
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

fn fits(v: i64, bits: u32) -> bool {
    let lim = 1i64 << (bits - 1);
    -lim < v && v <= lim
}

/// The state an open chunk needs to append; `t` and `v` are also the newest sample.
#[derive(Debug, Default)]
struct Encoder {
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            min_t: 0,
            max_t: 0,
            n: 0,
            flags: RISING | CLEAN,
            bits: BitBuf::new(),
        }
    }

    fn push(&mut self, e: &mut Encoder, t: i64, v: f64) {
        let vb = v.to_bits();
        let b = &mut self.bits;
        match self.n {
            0 => {
                b.write(t as u64, 64);
                b.write(vb, 64);
                self.min_t = t;
                // A chunk decodes on its own: no delta and no bit window carried over.
                e.delta = 0;
                e.leading = 0xff;
            }
            _ => {
                let delta = t - e.t;
                let dod = delta - e.delta;
                if dod == 0 {
                    b.write(0, 1);
                } else if let Some(&(ctl, cl, bits)) =
                    DOD_BUCKETS.iter().find(|(_, _, bits)| fits(dod, *bits))
                {
                    b.write(ctl, cl);
                    b.write(dod as u64, bits);
                } else {
                    b.write(0b1111, 4);
                    b.write(dod as u64, 64);
                }
                e.delta = delta;
                let x = vb ^ e.v;
                if x == 0 {
                    b.write(0, 1);
                } else {
                    let leading = (x.leading_zeros() as u8).min(31);
                    let trailing = x.trailing_zeros() as u8;
                    if e.leading != 0xff && leading >= e.leading && trailing >= e.trailing {
                        b.write(0b10, 2);
                        let sig = 64 - e.leading as u32 - e.trailing as u32;
                        b.write(x >> e.trailing, sig);
                    } else {
                        e.leading = leading;
                        e.trailing = trailing;
                        let sig = 64 - leading as u32 - trailing as u32;
                        b.write(0b11, 2);
                        b.write(leading as u64, 5);
                        // 64 significant bits are written as 0 (they cannot be 0).
                        b.write((sig & 63) as u64, 6);
                        b.write(x >> trailing, sig);
                    }
                }
            }
        }
        e.t = t;
        e.v = vb;
        self.max_t = t;
        self.n += 1;
    }
}

struct ChunkIter<'a> {
    r: BitReader<'a>,
    left: u16,
    i: u16,
    d: Decoder,
}

/// Inverse of [`fits`]: `2^(bits-1)` itself is positive, as Prometheus encodes it.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let v = v as i64;
    if v > 1 << (bits - 1) {
        v - (1 << bits)
    } else {
        v
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.d.step(&mut self.r, self.i == 0);
        self.i += 1;
        Some((self.d.t, f64::from_bits(self.d.v)))
    }
}

/// One series and its samples in time order (milliseconds, value), compressed in chunks.
#[derive(Debug)]
pub struct Series {
    pub labels: Labels,
    /// Exactly as long as allocated (chunks come every 30 min; a `Vec` would spend 8 bytes
    /// per series on a capacity).
    sealed: Box<[Chunk]>,
    head: Chunk,
    enc: Encoder,
}

impl Series {
    fn new(labels: Labels) -> Self {
        Series {
            labels,
            sealed: Box::default(),
            head: Chunk::new(),
            enc: Encoder::default(),
        }
    }

    fn push(&mut self, t: i64, v: f64) {
        if self.head.n >= CHUNK_SAMPLES {
            let mut full = std::mem::replace(&mut self.head, Chunk::new());
            full.bits.seal();
            let mut sealed = std::mem::take(&mut self.sealed).into_vec();
            sealed.push(full);
            self.sealed = sealed.into_boxed_slice();
        }
        // The series' previous sample, if it has one (the encoder keeps the newest).
        let follows = self.head.n > 0 || !self.sealed.is_empty();
        let prev = f64::from_bits(self.enc.v);
        self.head.push(&mut self.enc, t, v);
        // NaN compares as unordered: it ends a rise as a reset does.
        if follows && matches!(v.partial_cmp(&prev), None | Some(std::cmp::Ordering::Less)) {
            self.head.flags &= !RISING;
        }
        if is_stale(v) {
            self.head.flags &= !(RISING | CLEAN);
        }
    }

    /// The newest sample (the encoder keeps it), for instant selectors without decoding.
    fn last(&self) -> (i64, f64) {
        (self.enc.t, f64::from_bits(self.enc.v))
    }

    fn chunks(&self) -> impl DoubleEndedIterator<Item = &Chunk> {
        self.sealed
            .iter()
            .chain((self.head.n > 0).then_some(&self.head))
    }

    /// Samples with `mint <= t <= maxt` (Prometheus 2.x ranges are closed at both ends).
    pub fn range(&self, mint: i64, maxt: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.chunks()
            .filter(move |c| c.max_t >= mint && c.min_t <= maxt)
            .flat_map(|c| c.iter())
            .skip_while(move |(t, _)| *t < mint)
            .take_while(move |(t, _)| *t <= maxt)
    }

    /// Appends the non-stale samples with `mint <= t <= maxt` to `out`: [`Series::range`]
    /// without stale markers, in one loop per chunk.
    /// With a cursor, the chunk where the window starts is decoded from it (see [`Cursor`]),
    /// and the cursor then points at the window's first sample.
    pub fn range_into(
        &self,
        mint: i64,
        maxt: i64,
        out: &mut Vec<(i64, f64)>,
        mut cur: Option<&mut Cursor>,
    ) {
        for c in self.chunks() {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            if c.min_t < mint {
                // Where the window starts: the older samples are only decoded to get there.
                let Some(mut p) = c.first_at_or_after(mint, cur.take()) else {
                    continue;
                };
                loop {
                    let (t, v) = p.sample();
                    if t > maxt {
                        break;
                    }
                    if !is_stale(v) {
                        out.push((t, v));
                    }
                    if p.i >= c.n {
                        break;
                    }
                    p.step();
                }
                continue;
            }
            if c.max_t <= maxt {
                out.reserve(c.n as usize);
                c.for_each(|t, v| {
                    if !is_stale(v) {
                        out.push((t, v));
                    }
                    true
                });
                continue;
            }
            c.for_each(|t, v| {
                if t > maxt {
                    return false;
                }
                if !is_stale(v) {
                    out.push((t, v));
                }
                true
            });
        }
    }

    /// The first and last sample of the window `mint..=maxt` and how many it holds, decoding
    /// only up to its first sample, when every chunk it touches has all of `need` set
    /// ([`RISING`] or [`CLEAN`]: then no stale marker is left out and, with `RISING`, no
    /// counter reset sits inside) and the window reaches the newest sample. `None`
    /// otherwise: read the window with [`Series::range_into`].
    pub fn summary(
        &self,
        mint: i64,
        maxt: i64,
        need: u8,
        cur: Option<&mut Cursor>,
    ) -> Option<Summary> {
        let last = self.last();
        if self.head.n == 0 || last.0 > maxt || last.0 < mint {
            return None;
        }
        let from = self.sealed.partition_point(|c| c.max_t < mint);
        let mut chunks = self.sealed[from..].iter().chain([&self.head]);
        if chunks.clone().any(|c| c.flags & need != need) {
            return None;
        }
        let count: usize = chunks.clone().map(|c| c.n as usize).sum();
        let p = chunks.next()?.first_at_or_after(mint, cur)?;
        Some(Summary {
            first: p.sample(),
            last,
            count: count - (p.i as usize - 1),
        })
    }

    /// An upper bound of `range(mint, maxt).count()`, without decoding.
    pub fn range_bound(&self, mint: i64, maxt: i64) -> usize {
        self.chunks()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
            .map(|c| c.n as usize)
            .sum()
    }

    /// The newest sample at or before `t`.
    pub fn at_or_before(&self, t: i64) -> Option<(i64, f64)> {
        if self.head.n == 0 {
            return None;
        }
        if self.last().0 <= t {
            return Some(self.last());
        }
        let c = self.chunks().rev().find(|c| c.min_t <= t)?;
        c.iter().take_while(|(ts, _)| *ts <= t).last()
    }

    fn len(&self) -> usize {
        self.chunks().map(|c| c.n as usize).sum()
    }
}

/// Series indexed by label set and by metric name. Series ids (slots) are stable until the
/// series is trimmed away; [`Storage::generation`] changes whenever one is.
#[derive(Debug, Default)]
pub struct Storage {
    slots: Vec<Option<Series>>,
    free: Vec<u32>,
    by_labels: FxHashMap<Labels, u32>,
    by_name: FxHashMap<Arc<str>, Vec<u32>>,
    strings: FxHashSet<Arc<str>>,
    generation: u64,
    /// Samples held, kept as they come and go (counting them walks every series).
    samples: usize,
}

impl Storage {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        match self.strings.get(s) {
            Some(a) => a.clone(),
            None => {
                self.strings.insert(s.clone());
                s.clone()
            }
        }
    }

    /// The id of the series with these labels, created if new.
    pub fn id(&mut self, labels: &Labels) -> u32 {
        if let Some(&i) = self.by_labels.get(labels) {
            return i;
        }
        let pairs: Vec<(Arc<str>, Arc<str>)> = labels
            .0
            .iter()
            .map(|(k, v)| (self.intern(k), self.intern(v)))
            .collect();
        let labels = Labels(pairs.into());
        let series = Series::new(labels.clone());
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(series);
                i
            }
            None => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as u32
            }
        };
        let name = self.intern(&Arc::from(labels.name()));
        self.by_name.entry(name).or_default().push(id);
        self.by_labels.insert(labels, id);
        id
    }

    /// Appends one sample; samples not newer than the series' newest are ignored.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        let id = self.id(labels);
        self.append_id(id, t, v);
    }

    /// [`Storage::append`] by id (from [`Storage::id`], same generation).
    pub fn append_id(&mut self, id: u32, t: i64, v: f64) {
        if let Some(Some(s)) = self.slots.get_mut(id as usize)
            && (s.head.n == 0 || s.last().0 < t)
        {
            s.push(t, v);
            self.samples += 1;
        }
    }

    /// Asks for the memory the next append to series `id` writes (its open chunk's end):
    /// called a few lines ahead while a snapshot is read, so the append finds it cached.
    pub fn prefetch_append(&self, id: u32) {
        if let Some(Some(s)) = self.slots.get(id as usize) {
            let bits = &s.head.bits;
            prefetch(bits.data.as_ptr().wrapping_add(bits.len as usize / 8));
        }
    }

    /// Time of the newest sample of series `id`.
    pub fn newest(&self, id: u32) -> Option<i64> {
        match self.slots.get(id as usize) {
            Some(Some(s)) if s.head.n > 0 => Some(s.last().0),
            _ => None,
        }
    }

    /// Changes whenever series are removed (ids may then be reused).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Series whose metric name is `name` (all series when `None`).
    pub fn candidates<'a>(
        &'a self,
        name: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a Series> + 'a> {
        match name {
            Some(n) => Box::new(self.named(n).map(|(_, s)| s)),
            None => Box::new(self.slots.iter().flatten()),
        }
    }

    /// Series whose metric name is `name`, each with its place in the name's list: places
    /// stay the same (new series come last) while [`Storage::generation`] does.
    ///
    /// Reading a series' samples starts with cache misses on memory no other series shares
    /// (its chunk list, its chunks); the series a few places ahead are asked for meanwhile.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = (usize, &'a Series)> + 'a {
        let ids = self.by_name.get(name).map_or(&[][..], |ids| &ids[..]);
        let at = |i: usize| {
            ids.get(i)
                .and_then(|&id| self.slots.get(id as usize)?.as_ref())
        };
        ids.iter().enumerate().filter_map(move |(i, &id)| {
            if let Some(s) = at(i + 4) {
                prefetch(s.sealed.as_ptr());
                prefetch(s.head.bits.data.as_ptr());
            }
            if let Some(c) = at(i + 2).and_then(|s| s.sealed.last()) {
                prefetch(c.bits.data.as_ptr());
            }
            Some((i, self.slots[id as usize].as_ref()?))
        })
    }

    /// How long the list behind [`Storage::named`] is.
    pub fn named_len(&self, name: &str) -> usize {
        self.by_name.get(name).map_or(0, Vec::len)
    }

    /// The newest sample of a series is live (not a stale marker).
    pub fn is_live(&self, labels: &Labels) -> bool {
        self.by_labels
            .get(labels)
            .and_then(|&i| self.slots[i as usize].as_ref())
            .is_some_and(|s| s.head.n > 0 && !is_stale(s.last().1))
    }

    /// Drops whole chunks older than `keep_from` (chosen per metric name) and series with no
    /// sample since then. Chunks straddling `keep_from` stay: readers select by time.
    pub fn trim(&mut self, keep_from: impl Fn(&str) -> i64) {
        let mut removed = Vec::new();
        // One retention lookup per metric name, not per series.
        for (name, ids) in &self.by_name {
            let from = keep_from(name);
            for &i in ids {
                let Some(Some(s)) = self.slots.get_mut(i as usize) else {
                    continue;
                };
                // Nothing since `from` (the newest sample is the series' stale marker when
                // it went away, or its last before the history stopped).
                if s.last().0 < from {
                    removed.push(i);
                    continue;
                }
                let cut = s.sealed.partition_point(|c| c.max_t < from);
                if cut > 0 {
                    let mut sealed = std::mem::take(&mut s.sealed).into_vec();
                    let gone: usize = sealed.drain(..cut).map(|c| c.n as usize).sum();
                    self.samples -= gone;
                    s.sealed = sealed.into_boxed_slice();
                }
            }
        }
        if removed.is_empty() {
            return;
        }
        self.generation += 1;
        for &i in &removed {
            if let Some(s) = self.slots[i as usize].take() {
                self.samples -= s.len();
                self.by_labels.remove(&s.labels);
                if let Some(ids) = self.by_name.get_mut(s.labels.name()) {
                    ids.retain(|&x| x != i);
                    if ids.is_empty() {
                        self.by_name.remove(s.labels.name());
                    }
                }
            }
            self.free.push(i);
        }
        // Strings no series uses any more: only the interner holds them.
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    pub fn sample_count(&self) -> usize {
        debug_assert_eq!(
            self.samples,
            self.slots.iter().flatten().map(Series::len).sum::<usize>()
        );
        self.samples
    }

    /// Bytes held by compressed samples (capacity, padding included).
    pub fn chunk_bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .flat_map(|s| s.sealed.iter().chain([&s.head]))
            .map(|c| c.bits.data.len() + std::mem::size_of::<Chunk>())
            .sum()
    }

    pub fn series_count(&self) -> usize {
        self.by_labels.len()
    }
}

/// Deterministic pseudo-random numbers for tests (xorshift64).
#[cfg(test)]
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_stay_small() {
        // 50 000 series hold about 125 000 chunk headers: 8 bytes each is 1 MB.
        assert_eq!(std::mem::size_of::<Chunk>(), 48);
        // And 50 000 series headers: 8 bytes each is 0.4 MB.
        assert_eq!(std::mem::size_of::<Option<Series>>(), 112);
    }

    #[test]
    fn labels_sorted_and_empty_values_absent() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        let mut m = l.clone();
        m.set("__name__", "up");
        assert_eq!(m.to_string(), r#"up{a="1", b="2"}"#);
        m.set("a", "");
        assert_eq!(m.get("a"), "");
        assert_eq!(m.get("b"), "2");
    }

    #[test]
    fn range_is_closed_and_trim_drops_dead_series() {
        let mut s = Storage::new();
        let up = Labels::from_pairs([("__name__", "up")]);
        let gone = Labels::from_pairs([("__name__", "gone")]);
        for t in 0..300 {
            s.append(&up, t * 1000, t as f64);
        }
        s.append(&gone, 0, 1.0);
        s.append(&gone, 1000, stale_nan());
        let series = s.candidates(Some("up")).next().expect("series");
        assert_eq!(series.range(2000, 4000).count(), 3);
        assert_eq!(series.at_or_before(4500), Some((4000, 4.0)));
        assert_eq!(series.at_or_before(1_000_000), Some((299_000, 299.0)));
        let generation = s.generation();
        s.trim(|_| 250_000);
        assert_ne!(s.generation(), generation, "a series was removed");
        assert_eq!(s.series_count(), 1);
        // Whole chunks before 250 s go: samples 240.. stay (the chunk straddling the cut).
        assert_eq!(s.sample_count(), 60);
        assert!(s.is_live(&up));
        let series = s.candidates(Some("up")).next().expect("series");
        assert_eq!(series.range(0, 250_000).next(), Some((240_000, 240.0)));
    }

    /// Every encoding branch round-trips bit for bit: irregular and negative time steps,
    /// huge jumps, NaN, stale markers, infinities, -0.0 and values that need all 64 bits.
    #[test]
    fn chunks_round_trip_exactly() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut want = Vec::new();
        let mut t = -5_000_000i64;
        // Delta-of-delta exactly at each bucket's edges.
        let mut delta = 0;
        for dod in [8192, -8191, 65536, -65535, 524_288, -524_287, 8193, -8192] {
            delta += dod;
            t += delta;
            want.push((t, dod as f64));
        }
        for i in 0..1000 {
            let r = next();
            t += match i % 7 {
                0 => 15_000,
                1 => 15_000 + (r % 5) as i64,
                2 => 1 + (r % 9_000) as i64,
                3 => 60_000 + (r % 100_000) as i64,
                4 => 1 << 40,
                _ => 15_000,
            };
            let v = match r % 11 {
                0 => f64::NAN,
                1 => stale_nan(),
                2 => f64::INFINITY,
                3 => -0.0,
                4 => f64::from_bits(next()),
                5 => (r % 1000) as f64,
                6 => f64::MIN_POSITIVE,
                _ => want.last().map_or(1.0, |(_, v): &(i64, f64)| *v) + 1.0,
            };
            want.push((t, v));
        }
        let l = Labels::from_pairs([("__name__", "x")]);
        let mut s = Storage::new();
        for (t, v) in &want {
            s.append(&l, *t, *v);
        }
        let series = s.candidates(Some("x")).next().expect("series");
        let got: Vec<(i64, f64)> = series.range(i64::MIN, i64::MAX).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0, g.1.to_bits()), (w.0, w.1.to_bits()));
        }
        let (lo, hi) = (want[100].0, want[700].0);
        assert_eq!(series.range(lo, hi).count(), 601);
        assert_eq!(series.range(lo + 1, hi - 1).count(), 599);
        // The loop decoder agrees with the iterator, stale markers aside, on every kind of
        // window: inside one chunk, across chunks, whole chunks, open ends.
        let windows = [
            (lo, hi),
            (lo + 1, hi - 1),
            (i64::MIN, i64::MAX),
            (want[5].0, want[6].0),
            (want[119].0, want[121].0),
            (want[120].0, want[239].0),
            (want[1007].0, i64::MAX),
        ];
        for (a, b) in windows {
            let mut got = Vec::new();
            series.range_into(a, b, &mut got, None);
            let want: Vec<(i64, u64)> = series
                .range(a, b)
                .filter(|(_, v)| !is_stale(*v))
                .map(|(t, v)| (t, v.to_bits()))
                .collect();
            let got: Vec<(i64, u64)> = got.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            assert_eq!(got, want, "window {a}..={b}");
        }
        let before = series.at_or_before(want[500].0 - 1).map(|(t, _)| t);
        assert_eq!(before, Some(want[499].0));
    }
}
