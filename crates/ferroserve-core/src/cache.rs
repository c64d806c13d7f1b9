//! A content-addressed response cache: identical inference requests get the stored
//! response instead of running the model again.
//!
//! A request is reduced to a [`CacheKey`] by [`CacheKeyBuilder`] (a 128-bit hash of
//! everything that determines the response); [`ResponseCache`] maps keys to shared,
//! immutable response payloads within a fixed byte budget.
//!
//! # Eviction policy: CLOCK with a 2-bit frequency counter
//!
//! Each entry carries a saturating access counter (0..=3). A hit increments it; the clock
//! hand, when it needs room, passes over the slots in order, decrementing counters, and
//! evicts the first entry whose counter is already zero. New entries start at zero.
//!
//! This is scan-resistant: a one-time key (a scan, a burst of unique requests) enters at
//! zero and is the first thing the hand takes, while an entry that has been hit survives
//! up to three further revolutions without another hit. A recently-used order (LRU)
//! would instead let any run of unique keys longer than the capacity flush the whole
//! working set.
//!
//! It was chosen over S3-FIFO, which resists scans equally well, because it needs no
//! queues and no ghost table: one preallocated slot array, one hand, one counter byte
//! per entry, and a hit is a counter update under the shard lock rather than a list move.
//!
//! # Layout
//!
//! The cache is split into shards selected by the key's upper 64 bits, each behind its
//! own `Mutex`. A shard owns a fixed number of entry slots and an open-addressing index
//! (linear probing, backward-shift deletion, so no tombstones) over them, both allocated
//! up front: inserting never grows a table. A shard is bounded by its share of the byte
//! budget and by its slot count; whichever runs out first triggers eviction.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use xxhash_rust::xxh3::Xxh3Default;

/// Bytes charged per entry on top of its payload length, for the payload's allocation
/// header and allocator slack, so that many tiny entries still count. The slots and the
/// index are allocated up front by the constructor (56 bytes per slot) and are not
/// charged against the byte budget.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Average charged entry size [`ResponseCache::new`] assumes when it sizes the slot
/// arrays. A cache full of smaller entries is bounded by its slot count before its bytes.
pub const DEFAULT_AVERAGE_ENTRY_BYTES: usize = 512;

/// The identity of a request's response: a 128-bit hash built by [`CacheKeyBuilder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub u128);

/// Hashes the parts of an inference request that determine its response into a
/// [`CacheKey`].
///
/// Every field is written with a tag byte and a length prefix, so no two different
/// requests produce the same byte stream (`("ab", "c")` and `("a", "bc")` differ).
/// Fields are hashed in call order: the caller must feed inputs and outputs in a
/// canonical order (for example the order the model declares them) for equal requests
/// to produce equal keys.
pub struct CacheKeyBuilder {
    hasher: Xxh3Default,
}

impl CacheKeyBuilder {
    /// Version of the byte layout below; changing the layout must change this.
    const FORMAT: u8 = 1;

    /// Starts a key.
    pub fn new() -> Self {
        let mut hasher = Xxh3Default::new();
        hasher.update(&[Self::FORMAT]);
        Self { hasher }
    }

    /// Adds the model the request is addressed to. `load` tells apart two loads of the
    /// same version (a configuration changed on disk), whose responses may differ.
    pub fn model(&mut self, name: &str, version: u64, load: u64) -> &mut Self {
        self.tag(b'M');
        self.bytes(name.as_bytes());
        self.u64(version);
        self.u64(load);
        self
    }

    /// Adds one input tensor: its name, datatype name (e.g. `"FP32"`), shape and raw bytes.
    pub fn input(&mut self, name: &str, datatype: &str, shape: &[usize], data: &[u8]) -> &mut Self {
        self.tag(b'I');
        self.bytes(name.as_bytes());
        self.bytes(datatype.as_bytes());
        self.u64(shape.len() as u64);
        for &dim in shape {
            self.u64(dim as u64);
        }
        self.bytes(data);
        self
    }

    /// Adds one `BYTES` input tensor: its name, shape and elements (each length-prefixed,
    /// so `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn bytes_input<E: AsRef<[u8]>>(
        &mut self,
        name: &str,
        shape: &[usize],
        elements: &[E],
    ) -> &mut Self {
        self.tag(b'S');
        self.bytes(name.as_bytes());
        self.u64(shape.len() as u64);
        for &dim in shape {
            self.u64(dim as u64);
        }
        self.u64(elements.len() as u64);
        for element in elements {
            self.bytes(element.as_ref());
        }
        self
    }

    /// The key of everything added so far.
    pub fn finish(&self) -> CacheKey {
        CacheKey(self.hasher.digest128())
    }

    fn tag(&mut self, tag: u8) {
        self.hasher.update(&[tag]);
    }

    fn u64(&mut self, value: u64) {
        self.hasher.update(&value.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.hasher.update(bytes);
    }
}

impl Default for CacheKeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters since the cache was created, summed over shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get` calls that found their key.
    pub hits: u64,
    /// `get` calls that did not.
    pub misses: u64,
    /// Entries stored by `insert` (replacements included, oversized payloads not).
    pub insertions: u64,
    /// Entries removed to make room.
    pub evictions: u64,
}

/// A concurrent, byte-bounded map from [`CacheKey`] to shared response payloads.
///
/// See the [module documentation](self) for the eviction policy and layout.
pub struct ResponseCache {
    shards: Box<[PaddedShard]>,
    capacity_bytes: usize,
}

impl ResponseCache {
    /// A cache holding at most `capacity_bytes` (payload lengths plus
    /// [`ENTRY_OVERHEAD_BYTES`] per entry), split into `shards` shards (at least one), with
    /// slots for `capacity_bytes / DEFAULT_AVERAGE_ENTRY_BYTES` entries.
    pub fn new(capacity_bytes: usize, shards: usize) -> Self {
        Self::with_max_entries(
            capacity_bytes,
            shards,
            capacity_bytes / DEFAULT_AVERAGE_ENTRY_BYTES,
        )
    }

    /// Like [`new`](Self::new), with slots for `max_entries` entries in all (rounded up to
    /// a multiple of the shard count; at least one per shard).
    pub fn with_max_entries(capacity_bytes: usize, shards: usize, max_entries: usize) -> Self {
        let shards = shards.max(1);
        let budget = capacity_bytes / shards;
        let slots = max_entries.div_ceil(shards).max(1);
        let shards = (0..shards)
            .map(|_| PaddedShard(Mutex::new(Shard::new(budget, slots))))
            .collect();
        Self {
            shards,
            capacity_bytes,
        }
    }

    /// The stored payload for `key`, if any; counts a hit or a miss.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<[u8]>> {
        self.shard(key).get(key.0)
    }

    /// Stores `value` under `key`, replacing any previous value and evicting other entries
    /// as needed. Returns `false`, storing nothing, when the entry alone exceeds a shard's
    /// byte budget (`capacity_bytes / shards`).
    pub fn insert(&self, key: CacheKey, value: Arc<[u8]>) -> bool {
        self.shard(&key).insert(key.0, value)
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&self, key: &CacheKey) -> bool {
        self.shard(key).remove(key.0)
    }

    /// Number of entries stored.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).len).sum()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged for the stored entries; never above [`capacity_bytes`](Self::capacity_bytes).
    pub fn size_bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).bytes).sum()
    }

    /// The byte budget the cache was created with.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Hit, miss, insertion and eviction counts so far.
    pub fn stats(&self) -> CacheStats {
        self.shards.iter().fold(CacheStats::default(), |acc, s| {
            let s = lock(&s.0).stats;
            CacheStats {
                hits: acc.hits + s.hits,
                misses: acc.misses + s.misses,
                insertions: acc.insertions + s.insertions,
                evictions: acc.evictions + s.evictions,
            }
        })
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Shard> {
        let index = ((key.0 >> 64) as u64 % self.shards.len() as u64) as usize;
        lock(&self.shards[index].0)
    }
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .field("size_bytes", &self.size_bytes())
            .finish()
    }
}

/// A shard on cache lines of its own, so that threads working on neighbouring shards
/// do not invalidate each other's lock word and counters.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// Every shard operation leaves the shard consistent before it can panic, so a poisoned
/// lock still guards a valid shard.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks an unused index position.
const EMPTY: u32 = u32::MAX;
/// Highest counter value; a hit entry survives this many hand passes without another hit.
const MAX_FREQUENCY: u8 = 3;

struct Slot {
    key: u128,
    /// `None` while the slot is free.
    value: Option<Arc<[u8]>>,
    frequency: u8,
}

/// One shard: `slots.len()` entry slots, an index twice that size (a power of two),
/// and the free-slot stack. Invariants: an occupied slot has exactly one index position
/// pointing at it; a free slot is on `free` and has none; `bytes` is the sum of the
/// occupied slots' charges and never exceeds `budget`.
struct Shard {
    slots: Box<[Slot]>,
    index: Box<[u32]>,
    free: Vec<u32>,
    hand: usize,
    len: usize,
    bytes: usize,
    budget: usize,
    stats: CacheStats,
}

fn charge(value: &[u8]) -> usize {
    value.len() + ENTRY_OVERHEAD_BYTES
}

impl Shard {
    fn new(budget: usize, slots: usize) -> Self {
        let slots = slots.min(EMPTY as usize - 1);
        let index_len = (slots * 2).next_power_of_two();
        Self {
            slots: (0..slots)
                .map(|_| Slot {
                    key: 0,
                    value: None,
                    frequency: 0,
                })
                .collect(),
            index: vec![EMPTY; index_len].into_boxed_slice(),
            free: (0..slots as u32).rev().collect(),
            hand: 0,
            len: 0,
            bytes: 0,
            budget,
            stats: CacheStats::default(),
        }
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    fn home(&self, key: u128) -> usize {
        key as u64 as usize & self.mask()
    }

    /// The index position holding `key`, if present.
    fn find(&self, key: u128) -> Option<usize> {
        let mask = self.mask();
        let mut pos = self.home(key);
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                return None;
            }
            if self.slots[slot as usize].key == key {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    fn get(&mut self, key: u128) -> Option<Arc<[u8]>> {
        match self.find(key) {
            Some(pos) => {
                self.stats.hits += 1;
                let slot = &mut self.slots[self.index[pos] as usize];
                slot.frequency = (slot.frequency + 1).min(MAX_FREQUENCY);
                slot.value.clone()
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    fn insert(&mut self, key: u128, value: Arc<[u8]>) -> bool {
        let charge = charge(&value);
        if charge > self.budget {
            return false;
        }
        let frequency = match self.find(key) {
            Some(pos) => {
                let frequency = self.slots[self.index[pos] as usize].frequency;
                self.remove_at(pos);
                frequency
            }
            None => 0,
        };
        while self.bytes + charge > self.budget || self.free.is_empty() {
            self.evict_one();
        }
        let slot_index = self.free.pop().expect("eviction freed a slot");
        let slot = &mut self.slots[slot_index as usize];
        slot.key = key;
        slot.value = Some(value);
        slot.frequency = frequency;
        let mask = self.mask();
        let mut pos = self.home(key);
        while self.index[pos] != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = slot_index;
        self.len += 1;
        self.bytes += charge;
        self.stats.insertions += 1;
        true
    }

    fn remove(&mut self, key: u128) -> bool {
        match self.find(key) {
            Some(pos) => {
                self.remove_at(pos);
                true
            }
            None => false,
        }
    }

    /// Advances the hand to the first occupied slot with a zero counter, decrementing
    /// the counters it passes, and evicts it. Only called with at least one entry
    /// stored, so it ends within `MAX_FREQUENCY + 1` revolutions.
    fn evict_one(&mut self) {
        debug_assert!(self.len > 0);
        loop {
            let hand = self.hand;
            self.hand = (hand + 1) % self.slots.len();
            let slot = &mut self.slots[hand];
            if slot.value.is_none() {
                continue;
            }
            if slot.frequency > 0 {
                slot.frequency -= 1;
                continue;
            }
            let key = slot.key;
            let pos = self.find(key).expect("occupied slot is indexed");
            self.remove_at(pos);
            self.stats.evictions += 1;
            return;
        }
    }

    /// Frees the slot at index position `pos` and closes the gap in its probe run by
    /// shifting later entries back (backward-shift deletion).
    fn remove_at(&mut self, pos: usize) {
        let slot_index = self.index[pos];
        let slot = &mut self.slots[slot_index as usize];
        let value = slot.value.take().expect("indexed slot is occupied");
        slot.frequency = 0;
        self.bytes -= charge(&value);
        self.len -= 1;
        self.free.push(slot_index);

        let mask = self.mask();
        let mut hole = pos;
        let mut next = (pos + 1) & mask;
        loop {
            let moved = self.index[next];
            if moved == EMPTY {
                break;
            }
            let home = self.home(self.slots[moved as usize].key);
            // `moved` may fill the hole only if its home is not cyclically in (hole, next].
            let distance_to_next = next.wrapping_sub(home) & mask;
            let distance_to_hole = next.wrapping_sub(hole) & mask;
            if distance_to_next >= distance_to_hole {
                self.index[hole] = moved;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.index[hole] = EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(n: u64) -> CacheKey {
        let mut b = CacheKeyBuilder::new();
        b.model("m", n, 0);
        b.finish()
    }

    fn payload(n: u64, len: usize) -> Arc<[u8]> {
        let mut v = vec![0u8; len];
        for (i, b) in v.iter_mut().enumerate() {
            *b = (n as usize).wrapping_add(i) as u8;
        }
        v.into()
    }

    #[test]
    fn hits_and_misses_are_counted() {
        let cache = ResponseCache::new(1 << 20, 4);
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.insert(key(1), payload(1, 100)));
        assert_eq!(cache.get(&key(1)).as_deref(), Some(&*payload(1, 100)));
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                insertions: 1,
                evictions: 0
            }
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.size_bytes(), 100 + ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn replacing_a_key_keeps_one_entry() {
        let cache = ResponseCache::new(1 << 20, 1);
        cache.insert(key(1), payload(1, 100));
        cache.insert(key(1), payload(2, 300));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.size_bytes(), 300 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(cache.get(&key(1)).as_deref(), Some(&*payload(2, 300)));
        assert!(cache.remove(&key(1)));
        assert!(cache.is_empty());
        assert_eq!(cache.size_bytes(), 0);
    }

    #[test]
    fn oversized_entry_is_not_cached() {
        let cache = ResponseCache::new(4096, 2);
        assert!(!cache.insert(key(1), payload(1, 4096)));
        assert!(cache.is_empty());
        assert_eq!(cache.stats().insertions, 0);
    }

    #[test]
    fn eviction_keeps_within_the_byte_bound() {
        let capacity = 64 * 1024;
        let cache = ResponseCache::new(capacity, 4);
        for n in 0..10_000u64 {
            let len = 100 + (n as usize * 37) % 3000;
            assert!(cache.insert(key(n), payload(n, len)));
            assert!(cache.size_bytes() <= capacity);
        }
        let stats = cache.stats();
        assert!(stats.evictions > 0);
        assert_eq!(stats.insertions - stats.evictions, cache.len() as u64);
        // Whatever survived is intact.
        let mut found = 0;
        for n in 0..10_000u64 {
            if let Some(v) = cache.get(&key(n)) {
                let len = 100 + (n as usize * 37) % 3000;
                assert_eq!(&*v, &*payload(n, len));
                found += 1;
            }
        }
        assert_eq!(found, cache.len());
    }

    #[test]
    fn slot_count_bounds_small_entries() {
        let cache = ResponseCache::with_max_entries(1 << 20, 1, 100);
        for n in 0..1000u64 {
            cache.insert(key(n), payload(n, 1));
        }
        assert_eq!(cache.len(), 100);
        for n in 900..1000u64 {
            assert!(cache.get(&key(n)).is_some(), "newest entry {n} evicted");
        }
    }

    #[test]
    fn index_stays_consistent_under_churn() {
        // A tiny index with heavy collisions exercises backward-shift deletion.
        let cache = ResponseCache::with_max_entries(1 << 20, 1, 7);
        let mut rng = 1u64;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = rng % 20;
            if rng.is_multiple_of(3) {
                cache.remove(&key(n));
            } else if cache.get(&key(n)).is_none() {
                cache.insert(key(n), payload(n, 8));
            }
            assert!(cache.len() <= 7);
        }
        for n in 0..20 {
            if let Some(v) = cache.get(&key(n)) {
                assert_eq!(&*v, &*payload(n, 8));
            }
        }
    }

    /// A hot set touched once per `capacity` scan inserts: LRU would lose all of it (the
    /// reuse distance exceeds the capacity); CLOCK with counters keeps nearly all.
    #[test]
    fn a_scan_does_not_flush_the_working_set() {
        let capacity_entries = 1000;
        let cache = ResponseCache::with_max_entries(usize::MAX / 2, 1, capacity_entries);
        let hot: Vec<CacheKey> = (0..100).map(key).collect();
        for (n, k) in hot.iter().enumerate() {
            cache.insert(*k, payload(n as u64, 16));
        }
        for _ in 0..3 {
            for k in &hot {
                assert!(cache.get(k).is_some());
            }
        }
        let mut hot_hits = 0;
        let mut hot_gets = 0;
        for n in 0..20_000u64 {
            cache.insert(key(1_000_000 + n), payload(n, 16));
            if n.is_multiple_of(10) {
                let k = &hot[(n / 10) as usize % hot.len()];
                hot_gets += 1;
                if cache.get(k).is_some() {
                    hot_hits += 1;
                } else {
                    cache.insert(*k, payload(0, 16));
                }
            }
        }
        assert!(
            hot_hits * 10 >= hot_gets * 9,
            "hot hit rate {hot_hits}/{hot_gets}"
        );
        let survivors = hot.iter().filter(|k| cache.get(k).is_some()).count();
        assert!(survivors >= 90, "only {survivors} of 100 hot keys survived");
    }

    type Input<'a> = (&'a str, &'a str, &'a [usize], &'a [u8]);

    fn request(model: &str, version: u64, load: u64, inputs: &[Input]) -> CacheKey {
        let mut b = CacheKeyBuilder::new();
        b.model(model, version, load);
        for (name, dt, shape, data) in inputs {
            b.input(name, dt, shape, data);
        }
        b.finish()
    }

    fn strings(inputs: &[(&str, &[usize], &[&str])]) -> CacheKey {
        let mut b = CacheKeyBuilder::new();
        b.model("m", 1, 0);
        for (name, shape, elements) in inputs {
            b.bytes_input(name, shape, elements);
        }
        b.finish()
    }

    #[test]
    fn keys_separate_every_field() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let x: Input = ("x", "FP32", &[1, 2], &data);
        let base = request("resnet", 1, 0, &[x]);
        assert_eq!(base, request("resnet", 1, 0, &[x]));
        let variants = [
            request("resnet", 2, 0, &[x]),
            request("resnet", 1, 1, &[x]),
            request("resnex", 1, 0, &[x]),
            request("resnet", 1, 0, &[("z", "FP32", &[1, 2], &data)]),
            request("resnet", 1, 0, &[("x", "INT32", &[1, 2], &data)]),
            request("resnet", 1, 0, &[("x", "FP32", &[2, 1], &data)]),
            request("resnet", 1, 0, &[("x", "FP32", &[1, 2, 1], &data)]),
            request("resnet", 1, 0, &[("x", "FP32", &[1, 2], &data[..7])]),
            request("resnet", 1, 0, &[("x", "FP32", &[1, 2], &[0; 8])]),
            request("resnet", 1, 0, &[x, x]),
            request("resnet", 1, 0, &[]),
        ];
        let mut seen = HashSet::from([base]);
        for v in variants {
            assert!(seen.insert(v), "collision for {v:?}");
        }
    }

    #[test]
    fn keys_are_length_prefixed() {
        let a = request("ab", 1, 0, &[("c", "FP32", &[1], &[0])]);
        let b = request("a", 1, 0, &[("bc", "FP32", &[1], &[0])]);
        assert_ne!(a, b);
        let a = request("m", 1, 0, &[("ab", "c", &[1], &[0])]);
        let b = request("m", 1, 0, &[("a", "bc", &[1], &[0])]);
        assert_ne!(a, b);
        let a = request("m", 1, 0, &[("x", "U8", &[1], &[1, 2])]);
        let b = request("m", 1, 0, &[("x", "U8", &[1], &[1]), ("", "", &[], &[2])]);
        assert_ne!(a, b);
        let a = request(
            "m",
            1,
            0,
            &[("a", "U8", &[1], &[1]), ("b", "U8", &[1], &[1])],
        );
        let b = request(
            "m",
            1,
            0,
            &[("b", "U8", &[1], &[1]), ("a", "U8", &[1], &[1])],
        );
        assert_ne!(a, b, "order is part of the key");
    }

    #[test]
    fn bytes_inputs_keep_element_boundaries() {
        let base = strings(&[("img", &[2], &["ab", "c"])]);
        assert_eq!(base, strings(&[("img", &[2], &["ab", "c"])]));
        assert_ne!(base, strings(&[("img", &[2], &["a", "bc"])]));
        assert_ne!(base, strings(&[("img", &[2, 1], &["ab", "c"])]));
        assert_ne!(base, strings(&[("img", &[2], &["c", "ab"])]));
        let raw = request("m", 1, 0, &[("img", "BYTES", &[2], b"abc")]);
        assert_ne!(base, raw);
    }

    #[test]
    fn concurrent_use_is_consistent() {
        let capacity = 256 * 1024;
        let cache = ResponseCache::new(capacity, 4);
        let threads = 4;
        let ops_per_thread = 20_000u64;
        std::thread::scope(|s| {
            for t in 0..threads {
                let cache = &cache;
                s.spawn(move || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                    for _ in 0..ops_per_thread {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let n = rng % 2000;
                        let len = 64 + (n as usize % 7) * 100;
                        match cache.get(&key(n)) {
                            Some(v) => assert_eq!(&*v, &*payload(n, len)),
                            None => {
                                cache.insert(key(n), payload(n, len));
                            }
                        }
                    }
                });
            }
        });
        let stats = cache.stats();
        assert_eq!(stats.hits + stats.misses, threads * ops_per_thread);
        // Two threads may both miss and insert the same key: the second replaces.
        assert!(cache.len() as u64 <= stats.insertions - stats.evictions);
        assert!(cache.size_bytes() <= capacity);
        assert!(stats.hits > 0 && stats.evictions > 0);
    }
}
