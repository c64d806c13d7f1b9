//! Heap allocations of one `preprocess_f32` call in steady state (the same image again),
//! counted by a counting global allocator: what remains is the decoders' own state, since
//! the preprocessor's buffers and the resampler's coefficient tables are kept.
//! `cargo test -p ferroserve-vision --test allocations -- --nocapture` prints the counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use ferroserve_core::preprocess::ImagePreprocessing;
use ferroserve_vision::ImagePreprocessor;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// an atomic, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of one call on `name` from `tests/data/images`, after one call to warm up.
fn steady_state(name: &str) -> u64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/images/");
    let encoded = std::fs::read(format!("{dir}{name}")).unwrap();
    let mut pre = ImagePreprocessor::new(ImagePreprocessing::imagenet());
    let mut out = vec![0f32; pre.settings().image_len()];
    pre.preprocess_f32(&encoded, &mut out).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    pre.preprocess_f32(&encoded, &mut out).unwrap();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// One test, so that no other test's allocations run in between.
#[test]
fn steady_state_allocations_are_the_decoders_only() {
    // Budgets just above today's counts: a per-row or per-pixel allocation fails them.
    for (name, budget) in [("cat.jpg", 20), ("astronaut.png", 30)] {
        let count = steady_state(name);
        println!("{name}: {count} allocations per image");
        assert!(
            count <= budget,
            "{name}: {count} allocations, budget {budget}"
        );
    }
}
