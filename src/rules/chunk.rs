//! Prometheus' XOR chunks (`tsdb/chunkenc`): how a series' samples are compressed, decoded
//! and, through a [`Cursor`], decoded again from where the last read of a window stood.
//! Nothing here knows label sets or series; [`super::storage`] keeps the chunks.

/// Samples per chunk before it is sealed (30 min at a 15 s interval, as Prometheus' head).
pub(super) const CHUNK_SAMPLES: u16 = 120;

/// A run of samples compressed as in Prometheus' XOR chunks (Gorilla): timestamps as
/// delta-of-delta in 1/16/20/24/68 bits, values XORed with their predecessor. Regular
/// integer-valued series take ~1-2 bytes per sample instead of 16.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) min_t: i64,
    pub(super) max_t: i64,
    pub(super) n: u16,
    /// [`RISING`] and [`CLEAN`], kept while appending: what a window over this chunk may
    /// skip decoding (see [`Series::summary`](super::storage::Series::summary)).
    pub(super) flags: u8,
    pub(super) bits: BitBuf,
}

/// Every sample of the chunk is `>=` the one before it in the series (the previous chunk's
/// last included): no counter reset, no NaN, no stale marker.
pub const RISING: u8 = 1;
/// No stale marker in the chunk.
pub const CLEAN: u8 = 2;

/// What a window holds when only its ends and its length are needed ([`Series::summary`](super::storage::Series::summary)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub first: (i64, f64),
    pub last: (i64, f64),
    pub count: usize,
}

impl Chunk {
    pub(super) fn iter(&self) -> ChunkIter<'_> {
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
    pub(super) fn for_each(&self, mut f: impl FnMut(i64, f64) -> bool) {
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
pub(super) struct Pos<'a> {
    r: BitReader<'a>,
    d: Decoder,
    pub(super) i: u16,
}

impl Pos<'_> {
    #[inline(always)]
    pub(super) fn step(&mut self) {
        self.d.step(&mut self.r, self.i == 0);
        self.i += 1;
    }

    pub(super) fn sample(&self) -> (i64, f64) {
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
    pub(super) fn first_at_or_after(&self, mint: i64, cur: Option<&mut Cursor>) -> Option<Pos<'_>> {
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
    pub(super) fn step(&mut self, r: &mut BitReader, first: bool) {
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
pub(super) struct BitBuf {
    /// Exactly as long as allocated (a `Vec` would spend 8 more bytes per chunk on a
    /// capacity that always equals the length).
    pub(super) data: Box<[u8]>,
    /// Bits written (a chunk holds at most 120 samples of at most 147 bits).
    pub(super) len: u32,
}

const PAD: usize = 16;

impl BitBuf {
    pub(super) fn new() -> Self {
        BitBuf {
            data: vec![0; PAD + 16].into_boxed_slice(),
            len: 0,
        }
    }

    pub(super) fn write(&mut self, value: u64, n: u32) {
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
    pub(super) fn seal(&mut self) {
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
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            next: 0,
            buf: 0,
            have: 0,
        }
    }

    /// Continues at bit `bit` of the data (as [`BitReader::position`] gave it).
    pub(super) fn seek(&mut self, bit: usize) {
        self.next = bit / 8;
        self.buf = 0;
        self.have = 0;
        self.refill();
        self.skip((bit % 8) as u32);
    }

    /// Bits consumed so far.
    pub(super) fn position(&self) -> usize {
        self.next * 8 - self.have as usize
    }

    /// At least 57 valid bits afterwards.
    #[inline]
    pub(super) fn refill(&mut self) {
        if self.have > 56 {
            return;
        }
        if let Some(s) = self.data.get(self.next..self.next + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            self.buf |= u64::from_be_bytes(b) >> self.have;
            // Whole bytes up to 57..=64 bits in the window: the fast paths of
            // `Decoder::step` take up to 57 bits after a refill.
            let bytes = (64 - self.have) >> 3;
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
    pub(super) fn peek(&mut self, n: u32) -> u64 {
        if self.have < n {
            self.refill();
        }
        self.buf >> (64 - n)
    }

    /// Consumes `n` bits already seen by [`BitReader::peek`].
    #[inline]
    pub(super) fn skip(&mut self, n: u32) {
        self.buf = if n == 64 { 0 } else { self.buf << n };
        self.have -= n;
    }

    /// The next `n` (0..=64) bits.
    #[inline]
    pub(super) fn read(&mut self, n: u32) -> u64 {
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
    pub(super) fn read_long(&mut self, n: u32) -> u64 {
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
pub(super) struct Encoder {
    pub(super) t: i64,
    pub(super) delta: i64,
    pub(super) v: u64,
    pub(super) leading: u8,
    pub(super) trailing: u8,
}

impl Chunk {
    pub(super) fn new() -> Self {
        Chunk {
            min_t: 0,
            max_t: 0,
            n: 0,
            flags: RISING | CLEAN,
            bits: BitBuf::new(),
        }
    }

    pub(super) fn push(&mut self, e: &mut Encoder, t: i64, v: f64) {
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

pub(super) struct ChunkIter<'a> {
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

#[cfg(test)]
mod tests {
    use crate::rules::labels::Labels;
    use crate::rules::storage::Storage;

    /// A refill from an empty window must leave at least 57 bits: a value whose XOR has 54
    /// significant bits, read right after a byte boundary, used to run the window dry.
    #[test]
    fn values_with_wide_xor_windows_read_back() {
        let values = [1e16, 1.0, -1e16, 1.0, 0.1, 0.2, 0.3, 3.0, 1e-3, 7.0];
        let l = Labels::from_pairs([("__name__", "g")]);
        let mut s = Storage::new();
        for (i, v) in values.iter().enumerate() {
            s.append(&l, i as i64 * 60_000, *v);
        }
        let series = s.candidates(Some("g")).next().expect("stored");
        let got: Vec<f64> = series.range(0, 600_000).map(|(_, v)| v).collect();
        assert_eq!(got, values);
    }
}
