//! Pillow's antialiased bicubic resize, computed only for the pixels of the center crop,
//! with coefficient tables kept between images.
//!
//! This is Pillow's `ImagingResample` for 8-bit images (`Resample.c`): the Catmull-Rom
//! kernel (`a = -0.5`) widened by the downscale factor, the same tap bounds and
//! normalisation in `f64`, coefficients rounded to 22-bit fixed point, and each pass
//! rounded and clipped to 8 bits. One difference: Pillow runs the horizontal pass of the
//! upright image first; we run the pass along the stored rows first, because it reads
//! whole rows (eight 32-bit lanes a multiply) and leaves the other pass, which must
//! interleave rows to vectorise, only the crop's rows: 3-4x faster than Pillow's order on a
//! 12 MP photo. The order changes only the rounding between the passes (a level or two on
//! a few pixels); images whose orientation transposes them get Pillow's order, bit for bit.
//!
//! The loops are plain Rust, compiled twice: as is, and with AVX2 enabled, chosen at run
//! time. `fast_image_resize` did this work before, with hand-written SIMD, but rebuilt its
//! coefficients (one `Vec` per output pixel and axis, about 450 allocations) on every call,
//! with no way to keep them; the bench `preprocess` compares the two.

use std::ops::Range;

use crate::decode::Channels;
use crate::geometry::{Axis, CropPlan};

/// Fixed-point fraction bits of the coefficients (Pillow's `PRECISION_BITS`): 8 bits of
/// pixel and 2 of overshoot left in an `i32`.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounds the fixed-point sum to the nearest integer.
const HALF: i32 = 1 << (PRECISION_BITS - 1);
/// Rows the horizontal pass computes at once, one SIMD lane (per channel) each.
const BLOCK_ROWS: usize = 8;
/// Coefficient tables kept: two per image size, for the four most recent sizes.
const TABLES: usize = 8;

/// Pillow's `bicubic_filter`: Catmull-Rom, `a = -0.5`, support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The fixed-point filter of one axis: output pixel `i` (in stored order) is
/// `sum(input[start + t] * weights[i * ksize + t])` over `t < taps`, where
/// `(start, taps) = bounds[i]`.
#[derive(Debug, Default)]
struct Table {
    axis: Option<Axis>,
    ksize: usize,
    weights: Vec<i32>,
    bounds: Vec<(usize, usize)>,
    /// The input pixels any output pixel reads: `min(start)..max(start + taps)`.
    span: Range<usize>,
    /// When this table was last used, for eviction.
    used: u64,
}

impl Table {
    /// Computes the table of `axis` as Pillow's `precompute_coeffs` and
    /// `normalize_coeffs_8bpc` do, reusing this table's memory.
    fn build(&mut self, axis: Axis) {
        // Pillow passes the box as C floats: `(double)(in1 - in0) / outSize`.
        let scale = f64::from(axis.input as f32) / axis.resized as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        let ksize = support.ceil() as usize * 2 + 1;
        let recip = 1.0 / filter_scale;
        let len = axis.len as usize;
        self.weights.clear();
        self.weights.resize(len * ksize, 0);
        self.bounds.clear();
        let input = i64::from(axis.input);
        for (i, out) in self.weights.chunks_exact_mut(ksize).enumerate() {
            let i = if axis.mirrored { len - 1 - i } else { i };
            let center = ((axis.first + i as u64) as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero.
            let min = ((center - support + 0.5) as i64).max(0);
            let max = ((center + support + 0.5) as i64).min(input);
            let taps = (max - min).max(0) as usize;
            let weight = |t: usize| bicubic(((t as i64 + min) as f64 - center + 0.5) * recip);
            let sum: f64 = (0..taps).map(weight).sum();
            for (t, w) in out[..taps].iter_mut().enumerate() {
                let normalized = if sum != 0.0 {
                    weight(t) / sum
                } else {
                    weight(t)
                };
                let fixed = normalized * f64::from(1u32 << PRECISION_BITS);
                // Pillow's `(int)(fixed +- 0.5)`, additions rounded in f64 as in C.
                *w = if fixed < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            let mut start = min as usize;
            if axis.mirrored {
                out[..taps].reverse();
                start = axis.input as usize - start - taps;
            }
            self.bounds.push((start, taps));
        }
        let lo = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let hi = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        self.span = lo..hi.max(lo);
        self.ksize = ksize;
        self.axis = Some(axis);
    }

    fn output(&self, i: usize) -> (usize, &[i32]) {
        let (start, taps) = self.bounds[i];
        (start, &self.weights[i * self.ksize..][..taps])
    }

    fn bytes(&self) -> usize {
        self.weights.capacity() * size_of::<i32>()
            + self.bounds.capacity() * size_of::<(usize, usize)>()
    }
}

/// Resamples the crop of a [`CropPlan`] from decoded 8-bit gray or RGB pixels, keeping its
/// coefficient tables (the most recent [`TABLES`] axes) and scratch memory between calls:
/// once an image size has been seen, resampling it again allocates nothing.
pub(crate) struct Resampler {
    tables: Vec<Table>,
    clock: u64,
    /// The result of the first pass.
    between: Vec<u8>,
    /// `BLOCK_ROWS` input rows of the horizontal pass, interleaved pixel by pixel.
    block: Vec<u8>,
    /// One output row of the vertical pass, as fixed-point sums.
    sums: Vec<i32>,
    avx2: bool,
}

impl Resampler {
    pub fn new() -> Resampler {
        Resampler {
            tables: Vec::new(),
            clock: 0,
            between: Vec::new(),
            block: Vec::new(),
            sums: Vec::new(),
            avx2: avx2_available(),
        }
    }

    /// Heap bytes this resampler keeps between calls.
    pub fn retained_bytes(&self) -> usize {
        self.tables.iter().map(Table::bytes).sum::<usize>()
            + self.tables.capacity() * size_of::<Table>()
            + self.between.capacity()
            + self.block.capacity()
            + self.sums.capacity() * size_of::<i32>()
    }

    /// Frees the scratch rows (the coefficient tables are kept).
    pub fn release_scratch(&mut self) {
        self.between = Vec::new();
        self.block = Vec::new();
        self.sums = Vec::new();
    }

    /// Writes the `plan.columns.len` x `plan.rows.len` crop of the `width` x `height` image
    /// `pixels` (`channels` bytes a pixel, rows top to bottom) into `out`, in stored
    /// orientation, growing `out` only if it is too small.
    pub fn resample(
        &mut self,
        pixels: &[u8],
        width: usize,
        channels: Channels,
        plan: &CropPlan,
        out: &mut Vec<u8>,
    ) {
        let columns = self.table(plan.columns);
        let rows = self.table(plan.rows);
        let len = plan.columns.len as usize * plan.rows.len as usize * channels as usize;
        if out.len() < len {
            out.resize(len, 0);
        }
        let job = Job {
            pixels,
            width,
            columns: &self.tables[columns],
            rows: &self.tables[rows],
            between: &mut self.between,
            block: &mut self.block,
            sums: &mut self.sums,
            out: &mut out[..len],
        };
        match channels {
            Channels::Gray => job.run::<1, BLOCK_ROWS>(self.avx2),
            Channels::Rgb => job.run::<3, { 3 * BLOCK_ROWS }>(self.avx2),
        }
    }

    /// The index of the table of `axis`, built in place of the least recently used one
    /// if it is not kept.
    fn table(&mut self, axis: Axis) -> usize {
        self.clock += 1;
        let at = match self.tables.iter().position(|t| t.axis == Some(axis)) {
            Some(at) => at,
            None => {
                let at = if self.tables.len() < TABLES {
                    self.tables.push(Table::default());
                    self.tables.len() - 1
                } else {
                    let oldest = self.tables.iter().enumerate().min_by_key(|(_, t)| t.used);
                    oldest.map_or(0, |(at, _)| at)
                };
                self.tables[at].build(axis);
                at
            }
        };
        self.tables[at].used = self.clock;
        at
    }
}

/// One resampling, its inputs and scratch memory borrowed.
struct Job<'a> {
    pixels: &'a [u8],
    width: usize,
    columns: &'a Table,
    rows: &'a Table,
    between: &'a mut Vec<u8>,
    block: &'a mut Vec<u8>,
    sums: &'a mut Vec<i32>,
    out: &'a mut [u8],
}

impl Job<'_> {
    fn run<const C: usize, const L: usize>(self, avx2: bool) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: `avx2` is true only when the CPU reported AVX2 at run time.
            #[allow(unsafe_code)]
            unsafe {
                self.run_avx2::<C, L>()
            };
            return;
        }
        let _ = avx2;
        self.passes::<C, L>();
    }

    /// The same code as [`Job::passes`], compiled with AVX2 enabled so that the loops over
    /// lanes vectorise eight 32-bit sums wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2<const C: usize, const L: usize>(self) {
        self.passes::<C, L>();
    }

    /// The vertical pass first, over the columns the crop reads, then the horizontal pass
    /// over the crop's rows only.
    #[inline(always)]
    fn passes<const C: usize, const L: usize>(self) {
        let span = self.columns.span.clone();
        let row_len = span.len() * C;
        let between = grow(self.between, self.rows.bounds.len() * row_len);
        vertical(
            self.pixels,
            self.width * C,
            0,
            span.start * C..span.end * C,
            self.rows,
            self.sums,
            between,
        );
        horizontal::<C, L>(
            between,
            row_len,
            span.start,
            0..self.rows.bounds.len(),
            self.columns,
            self.block,
            self.out,
        );
    }
}

/// The first `len` bytes of `buf`, grown if it is shorter.
fn grow(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// Pillow's `clip8`: the fixed-point sum rounded down to 8 bits, clipped to `0..=255`.
#[inline(always)]
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's horizontal pass over rows `rows` of `src` (`stride` bytes a row, whose first
/// pixel is input column `origin`), `C` channels, into `out` (`table`'s output width a row).
///
/// Rows go `BLOCK_ROWS` at a time: their pixels are first interleaved into `block`, so
/// that each tap is one multiply-add over `L = BLOCK_ROWS * C` lanes sharing a coefficient.
#[inline(always)]
fn horizontal<const C: usize, const L: usize>(
    src: &[u8],
    stride: usize,
    origin: usize,
    rows: Range<usize>,
    table: &Table,
    block: &mut Vec<u8>,
    out: &mut [u8],
) {
    debug_assert_eq!(L, BLOCK_ROWS * C);
    let span = table.span.clone();
    let out_stride = table.bounds.len() * C;
    if block.len() < span.len() * L {
        block.resize(span.len() * L, 0);
    }
    let block = &mut block[..span.len() * L];
    for (first, out_rows) in rows
        .clone()
        .step_by(BLOCK_ROWS)
        .zip(out.chunks_mut(BLOCK_ROWS * out_stride))
    {
        let count = (rows.end - first).min(BLOCK_ROWS);
        for r in 0..BLOCK_ROWS {
            // Missing rows of the last block repeat its last row; their sums are not stored.
            let y = first + r.min(count - 1);
            let row = &src[y * stride + (span.start - origin) * C..][..span.len() * C];
            for (pixel, lanes) in row.chunks_exact(C).zip(block.chunks_exact_mut(L)) {
                lanes[r * C..][..C].copy_from_slice(pixel);
            }
        }
        for i in 0..table.bounds.len() {
            let (start, weights) = table.output(i);
            let taps = &block[(start - span.start) * L..][..weights.len() * L];
            let mut sums = [HALF; L];
            for (lanes, &weight) in taps.chunks_exact(L).zip(weights) {
                for (sum, &p) in sums.iter_mut().zip(lanes) {
                    *sum += i32::from(p) * weight;
                }
            }
            for (r, out_row) in out_rows.chunks_exact_mut(out_stride).enumerate() {
                let pixel = &mut out_row[i * C..][..C];
                for (o, &sum) in pixel.iter_mut().zip(&sums[r * C..][..C]) {
                    *o = clip8(sum);
                }
            }
        }
    }
}

/// Pillow's vertical pass: output row `i` of `out` is the weighted sum of input rows
/// `bounds[i]` of `src` (`stride` bytes a row, the first being input row `origin`), over the
/// bytes `bytes` of each row.
#[inline(always)]
fn vertical(
    src: &[u8],
    stride: usize,
    origin: usize,
    bytes: Range<usize>,
    table: &Table,
    sums: &mut Vec<i32>,
    out: &mut [u8],
) {
    let width = bytes.len();
    sums.clear();
    sums.resize(width, HALF);
    for (i, out_row) in out.chunks_exact_mut(width).enumerate() {
        let (start, weights) = table.output(i);
        sums.fill(HALF);
        let row = |t: usize| &src[(start + t - origin) * stride + bytes.start..][..width];
        // Four taps per sweep over the sums: a quarter of the loads and stores of `sums`.
        let mut t = 0;
        while t + 4 <= weights.len() {
            let (r0, r1, r2, r3) = (row(t), row(t + 1), row(t + 2), row(t + 3));
            let k = &weights[t..t + 4];
            for (j, sum) in sums.iter_mut().enumerate() {
                *sum += i32::from(r0[j]) * k[0]
                    + i32::from(r1[j]) * k[1]
                    + i32::from(r2[j]) * k[2]
                    + i32::from(r3[j]) * k[3];
            }
            t += 4;
        }
        for (t, &weight) in weights.iter().enumerate().skip(t) {
            for (sum, &p) in sums.iter_mut().zip(row(t)) {
                *sum += i32::from(p) * weight;
            }
        }
        for (o, &sum) in out_row.iter_mut().zip(sums.iter()) {
            *o = clip8(sum);
        }
    }
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
