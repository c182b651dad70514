//! The sample history the rule engine reads: series and a small in-memory store (Prometheus'
//! head block, `tsdb/head`), over label sets from [`super::labels`] and chunks from
//! [`super::chunk`].
//!
//! One [`Storage`] serves both callers: the live engine appends a snapshot of our own registry
//! every evaluation (and a stale marker for every series that vanished, as a Prometheus scrape
//! does), and `rules test` loads promtool's `input_series`. Nothing here knows PromQL.

use super::chunk::{CHUNK_SAMPLES, CLEAN, Chunk, Cursor, Encoder, RISING, Summary};
use super::labels::Labels;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

/// Prometheus' staleness marker: a NaN with a distinct bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (bit for bit: other NaNs are not).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
/// Asks the CPU to bring the cache line at `p` in: a hint, for memory read soon.
#[inline(always)]
#[allow(unsafe_code)] // lib.rs denies the rest; the others are in mqtt::wakeup
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program, whatever `p` is.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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
