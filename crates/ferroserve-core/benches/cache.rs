//! Guards the throughput of `ResponseCache::get`/`insert` under contention: a change to
//! the shard locking, the index probing or the CLOCK hand that makes the cache slower
//! than a plain `Mutex<HashMap>`, `DashMap` or `quick_cache` shows up here.
//!
//! Workloads: 95% get / 5% insert and 50/50, at 1 and 2 threads, uniform keys over a key
//! space four times the cache's capacity, 4 KiB payloads preallocated once per key and
//! shared by `Arc` (the bench measures the map, not payload copies). `ResponseCache` and `quick_cache` are bounded
//! to the same byte budget; `Mutex<HashMap>` and `DashMap` are unbounded baselines (the
//! cost of a bare concurrent map: after warm-up every get hits and every insert replaces).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferroserve_core::cache::{CacheKey, ResponseCache, ENTRY_OVERHEAD_BYTES};

const VALUE_BYTES: usize = 4096;
const CAPACITY_ENTRIES: usize = 4096;
const CAPACITY_BYTES: usize = CAPACITY_ENTRIES * (VALUE_BYTES + ENTRY_OVERHEAD_BYTES);
const KEY_SPACE: usize = 4 * CAPACITY_ENTRIES;
const SHARDS: usize = 16;
/// Operations per criterion iteration, per thread.
const BATCH: usize = 1000;
/// Length of each thread's precomputed operation sequence (a power of two).
const OPS_LEN: usize = 1 << 16;

trait BenchCache: Sync {
    fn get(&self, key: u128) -> Option<Arc<[u8]>>;
    fn insert(&self, key: u128, value: Arc<[u8]>);
}

impl BenchCache for ResponseCache {
    fn get(&self, key: u128) -> Option<Arc<[u8]>> {
        ResponseCache::get(self, &CacheKey(key))
    }
    fn insert(&self, key: u128, value: Arc<[u8]>) {
        ResponseCache::insert(self, CacheKey(key), value);
    }
}

impl BenchCache for Mutex<HashMap<u128, Arc<[u8]>>> {
    fn get(&self, key: u128) -> Option<Arc<[u8]>> {
        self.lock().unwrap().get(&key).cloned()
    }
    fn insert(&self, key: u128, value: Arc<[u8]>) {
        self.lock().unwrap().insert(key, value);
    }
}

impl BenchCache for dashmap::DashMap<u128, Arc<[u8]>> {
    fn get(&self, key: u128) -> Option<Arc<[u8]>> {
        dashmap::DashMap::get(self, &key).map(|v| v.value().clone())
    }
    fn insert(&self, key: u128, value: Arc<[u8]>) {
        dashmap::DashMap::insert(self, key, value);
    }
}

#[derive(Clone)]
struct ByteWeighter;

impl quick_cache::Weighter<u128, Arc<[u8]>> for ByteWeighter {
    fn weight(&self, _key: &u128, value: &Arc<[u8]>) -> u64 {
        (value.len() + ENTRY_OVERHEAD_BYTES) as u64
    }
}

type QuickCache = quick_cache::sync::Cache<u128, Arc<[u8]>, ByteWeighter>;

impl BenchCache for QuickCache {
    fn get(&self, key: u128) -> Option<Arc<[u8]>> {
        quick_cache::sync::Cache::get(self, &key)
    }
    fn insert(&self, key: u128, value: Arc<[u8]>) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

#[derive(Clone, Copy)]
struct Op {
    /// Index into the key and value tables.
    key: usize,
    is_get: bool,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn keys() -> Vec<u128> {
    let mut state = 1;
    (0..KEY_SPACE)
        .map(|_| (splitmix(&mut state) as u128) << 64 | splitmix(&mut state) as u128)
        .collect()
}

fn ops(keys: &[u128], threads: usize, get_percent: u64) -> Vec<Vec<Op>> {
    (0..threads)
        .map(|t| {
            let mut state = 1000 + t as u64;
            (0..OPS_LEN)
                .map(|_| {
                    let r = splitmix(&mut state);
                    Op {
                        key: (r >> 8) as usize % keys.len(),
                        is_get: r % 100 < get_percent,
                    }
                })
                .collect()
        })
        .collect()
}

/// Runs `iters * BATCH` operations on each thread and returns the wall time from the
/// moment all threads are released until the last one finishes.
fn run(
    cache: &dyn BenchCache,
    ops: &[Vec<Op>],
    keys: &[u128],
    values: &[Arc<[u8]>],
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(ops.len() + 1);
    let start = std::thread::scope(|s| {
        for thread_ops in ops {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters as usize * BATCH {
                    let op = thread_ops[i & (OPS_LEN - 1)];
                    if op.is_get {
                        black_box(cache.get(keys[op.key]));
                    } else {
                        cache.insert(keys[op.key], values[op.key].clone());
                    }
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    start.elapsed()
}

fn caches() -> Vec<(&'static str, Box<dyn BenchCache>)> {
    vec![
        (
            "response_cache",
            Box::new(ResponseCache::new(CAPACITY_BYTES, SHARDS)),
        ),
        (
            "quick_cache",
            Box::new(QuickCache::with_weighter(
                CAPACITY_ENTRIES,
                CAPACITY_BYTES as u64,
                ByteWeighter,
            )),
        ),
        ("mutex_hashmap", Box::new(Mutex::new(HashMap::new()))),
        ("dashmap", Box::new(dashmap::DashMap::new())),
    ]
}

fn cache_throughput(c: &mut Criterion) {
    let keys = keys();
    // One payload per key, so concurrent hits do not contend on one reference count.
    let values: Vec<Arc<[u8]>> = (0..KEY_SPACE)
        .map(|i| vec![i as u8; VALUE_BYTES].into())
        .collect();
    for (workload, get_percent) in [("read95", 95), ("mixed50", 50)] {
        let mut group = c.benchmark_group(format!("cache/{workload}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for threads in [1, 2] {
            let ops = ops(&keys, threads, get_percent);
            group.throughput(Throughput::Elements((BATCH * threads) as u64));
            for (name, cache) in caches() {
                for (key, value) in keys.iter().zip(&values) {
                    cache.insert(*key, value.clone());
                }
                group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                    b.iter_custom(|iters| run(cache.as_ref(), &ops, &keys, &values, iters))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, cache_throughput);
criterion_main!(benches);
