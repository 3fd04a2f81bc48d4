//! The allocator behind kerust's own Rust code. Large blocks (a batch's activations and gradients, im2col
//! scratch, the GEMM crate's packing buffers) are mapped straight from the OS and, once freed, kept in one
//! process-wide cache that hands them out again by size; everything smaller goes to the system allocator.
//!
//! Why: a training step frees and reallocates the same large blocks every batch, from whichever
//! worker thread runs that piece. glibc serves each thread from its own arena and keeps freed memory there,
//! so each arena ends up holding its own copy of the step's working set (measured: 11.7 MB of 16.7 MB held
//! by the two worker arenas was free) and peak memory grows with fragmentation, not with what is live.
//! Letting glibc map every large block instead (a fixed `M_MMAP_THRESHOLD`) keeps memory exact but faults
//! every page in again on every batch (steps measured 36-53% slower). One shared cache of exact sizes gets
//! both: a block is faulted in once, reused whichever thread asks next, and unmapped when the cache is full
//! or emptied (`release_cached`, at the end of every epoch and inference call).
//!
//! The cache lock is only ever tried, never waited on: a thread that finds it taken maps or unmaps directly.
//! So no thread blocks inside the allocator, and a child forked while another thread held the lock still
//! allocates (it bypasses the cache instead of deadlocking).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Mutex, TryLockError};

/// Blocks from this size up are mapped and cached; smaller ones go to the system allocator.
const LARGE: usize = 64 << 10;
/// Mapping granularity assumed for rounding sizes (the OS rounds further up where its pages are larger).
const PAGE: usize = 4096;
/// Most blocks the cache holds: with these limits the seed CNN's training maps nothing after its first steps
/// (the same `mmap` count for a 1,500- and a 6,000-image epoch under `strace -c`).
const SLOTS: usize = 128;
/// Most bytes the cache holds; a freed block that would exceed it is unmapped at once.
const CAP_BYTES: usize = 64 << 20;
/// Attempts to take the cache lock before going straight to the OS.
const LOCK_TRIES: usize = 64;

struct Cache {
    /// (address, mapped length) of free blocks; the first `count` entries are in use.
    blocks: [(usize, usize); SLOTS],
    count: usize,
    bytes: usize,
}

type SharedCache = Mutex<Cache>;

const EMPTY: Cache = Cache {
    blocks: [(0, 0); SLOTS],
    count: 0,
    bytes: 0,
};

/// The cache behind the global allocator.
static CACHE: SharedCache = Mutex::new(EMPTY);

fn lock(cache: &SharedCache) -> Option<std::sync::MutexGuard<'_, Cache>> {
    for _ in 0..LOCK_TRIES {
        match cache.try_lock() {
            Ok(guard) => return Some(guard),
            // nothing panics while holding the lock; a poisoned one is still consistent
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
        }
    }
    None
}

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

fn mapped_len(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE
}

#[cfg(unix)]
mod os {
    /// Fresh zeroed pages, or null.
    pub fn map(len: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    /// # Safety
    /// `p` and `len` come from one `map` call and the block is no longer used.
    pub unsafe fn unmap(p: *mut u8, len: usize) {
        // SAFETY: guaranteed by the caller; failure would only leak the pages.
        unsafe { libc::munmap(p.cast(), len) };
    }
}

#[cfg(not(unix))]
mod os {
    use std::alloc::{GlobalAlloc, Layout, System};

    /// Zeroed page-aligned memory from the system allocator, or null.
    pub fn map(len: usize) -> *mut u8 {
        // SAFETY: `len` is a non-zero multiple of the page size, a valid layout.
        unsafe { System.alloc_zeroed(Layout::from_size_align_unchecked(len, super::PAGE)) }
    }

    /// # Safety
    /// `p` and `len` come from one `map` call and the block is no longer used.
    pub unsafe fn unmap(p: *mut u8, len: usize) {
        // SAFETY: guaranteed by the caller.
        unsafe { System.dealloc(p, Layout::from_size_align_unchecked(len, super::PAGE)) };
    }
}

/// Take a cached block of exactly `len` mapped bytes (the most recently freed one: its pages are warmest).
fn take(cache: &SharedCache, len: usize) -> Option<*mut u8> {
    let mut c = lock(cache)?;
    let n = c.count;
    let i = (0..n).rev().find(|&i| c.blocks[i].1 == len)?;
    let (addr, _) = c.blocks[i];
    c.blocks[i] = c.blocks[n - 1];
    c.count -= 1;
    c.bytes -= len;
    Some(addr as *mut u8)
}

/// Keep a freed block for reuse; false when the cache is full or busy (the caller unmaps it).
fn put(cache: &SharedCache, p: *mut u8, len: usize) -> bool {
    let Some(mut c) = lock(cache) else {
        return false;
    };
    if c.count == SLOTS || c.bytes + len > CAP_BYTES {
        return false;
    }
    let n = c.count;
    c.blocks[n] = (p as usize, len);
    c.count += 1;
    c.bytes += len;
    true
}

fn release(cache: &SharedCache) {
    let mut taken = [(0usize, 0usize); SLOTS];
    let n = match lock(cache) {
        Some(mut c) => {
            let n = c.count;
            taken[..n].copy_from_slice(&c.blocks[..n]);
            c.count = 0;
            c.bytes = 0;
            n
        }
        None => return,
    };
    for &(addr, len) in &taken[..n] {
        // SAFETY: cached blocks came from `os::map` with this length and nothing references them.
        unsafe { os::unmap(addr as *mut u8, len) };
    }
}

/// A large block: a cached one of the same mapped size, or a fresh mapping.
fn alloc_large(cache: &SharedCache, layout: Layout, zeroed: bool) -> *mut u8 {
    let len = mapped_len(layout.size());
    match take(cache, len) {
        Some(p) => {
            if zeroed {
                // SAFETY: the block holds at least `layout.size()` bytes and is ours alone.
                unsafe { p.write_bytes(0, layout.size()) };
            }
            p
        }
        // fresh anonymous pages are already zero
        None => os::map(len),
    }
}

/// # Safety
/// `p` came from `alloc_large` with this layout and is no longer used.
unsafe fn free_large(cache: &SharedCache, p: *mut u8, layout: Layout) {
    let len = mapped_len(layout.size());
    if !put(cache, p, len) {
        // SAFETY: `p` was mapped with `len` bytes and its owner has let go of it.
        unsafe { os::unmap(p, len) };
    }
}

/// Unmap every cached block (their pages go back to the OS). Blocks in use are untouched.
pub fn release_cached() {
    release(&CACHE);
}

/// Bytes held in the cache (free blocks awaiting reuse).
pub fn cached_bytes() -> usize {
    lock(&CACHE).map_or(0, |c| c.bytes)
}

pub struct KerustAlloc;

// SAFETY: large blocks are page-aligned mappings of at least the requested size (so any alignment up to a
// page holds), each handed out to one owner at a time; everything else is the system allocator's.
unsafe impl GlobalAlloc for KerustAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            alloc_large(&CACHE, layout, false)
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            alloc_large(&CACHE, layout, true)
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; `is_large` routes a block back to where `alloc` got it.
        unsafe {
            if is_large(&layout) {
                free_large(&CACHE, p, layout)
            } else {
                System.dealloc(p, layout)
            }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `layout.align()` is valid and the caller guarantees `new_size` fits it.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(&layout), is_large(&new_layout)) {
            // SAFETY: forwarded contract.
            (false, false) => unsafe { System.realloc(p, layout, new_size) },
            (true, true) if mapped_len(new_size) == mapped_len(layout.size()) => p,
            _ => {
                // SAFETY: a new block, the old contents copied up to the smaller size, then the old one freed.
                unsafe {
                    let q = self.alloc(new_layout);
                    if !q.is_null() {
                        std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                    q
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(cache: &SharedCache, p: *mut u8) -> bool {
        let c = lock(cache).unwrap();
        c.blocks[..c.count].iter().any(|&(a, _)| a == p as usize)
    }

    #[test]
    fn a_freed_block_is_reused_for_the_same_mapped_size_then_released() {
        // a cache of its own: the global one is shared with every other test thread
        static OWN: SharedCache = Mutex::new(EMPTY);
        let size = 3 * LARGE + 5; // not a page multiple
        let layout = Layout::from_size_align(size, 16).unwrap();
        let a = alloc_large(&OWN, layout, false);
        assert!(!a.is_null());
        assert_eq!(a as usize % PAGE, 0);
        // SAFETY: `a` holds `size` bytes; freed once with its layout.
        unsafe {
            a.write_bytes(7, size);
            free_large(&OWN, a, layout);
        }
        assert!(holds(&OWN, a));
        assert_eq!(lock(&OWN).unwrap().bytes, mapped_len(size));
        // one byte less maps to the same length: the same block comes back, zeroed when asked
        let smaller = Layout::from_size_align(size - 1, 16).unwrap();
        let b = alloc_large(&OWN, smaller, true);
        assert_eq!(b, a);
        // SAFETY: `b` holds `size - 1` bytes.
        assert!(unsafe { std::slice::from_raw_parts(b, size - 1) }
            .iter()
            .all(|&v| v == 0));
        assert_eq!(lock(&OWN).unwrap().bytes, 0);
        // a different mapped length is not served from the cache
        // SAFETY: `b` is freed once with the layout it was taken with.
        unsafe { free_large(&OWN, b, smaller) };
        let other = Layout::from_size_align(size + PAGE, 16).unwrap();
        let c = alloc_large(&OWN, other, false);
        assert_ne!(c, a);
        assert!(holds(&OWN, a));
        release(&OWN);
        assert!(!holds(&OWN, a));
        assert_eq!(lock(&OWN).unwrap().bytes, 0);
        // SAFETY: `c` is freed once with its layout.
        unsafe { free_large(&OWN, c, other) };
        release(&OWN);
    }

    #[test]
    fn a_full_cache_unmaps_instead_of_keeping() {
        static OWN: SharedCache = Mutex::new(EMPTY);
        let layout = Layout::from_size_align(CAP_BYTES / 2 + PAGE, 8).unwrap();
        let blocks: Vec<*mut u8> = (0..3).map(|_| alloc_large(&OWN, layout, true)).collect();
        for &p in &blocks {
            // SAFETY: each block is freed once with its layout.
            unsafe { free_large(&OWN, p, layout) };
        }
        // only one of the three fits under the cap
        let c = lock(&OWN).unwrap();
        assert_eq!((c.count, c.bytes), (1, mapped_len(layout.size())));
        drop(c);
        release(&OWN);
    }

    #[test]
    fn small_and_over_aligned_blocks_are_the_system_allocators() {
        assert!(!is_large(&Layout::from_size_align(LARGE - 1, 8).unwrap()));
        assert!(is_large(&Layout::from_size_align(LARGE, PAGE).unwrap()));
        let wide = Layout::from_size_align(LARGE, PAGE * 2).unwrap();
        assert!(!is_large(&wide));
        // SAFETY: a non-zero size, freed with the same layout.
        unsafe {
            let p = KerustAlloc.alloc(wide);
            assert!(!p.is_null());
            assert_eq!(p as usize % (PAGE * 2), 0);
            KerustAlloc.dealloc(p, wide);
        }
    }

    #[test]
    fn growing_and_shrinking_keep_the_contents() {
        let mut v: Vec<u32> = (0..1000).collect();
        v.reserve_exact(LARGE); // small -> large
        v.extend(1000..40_000);
        v.reserve_exact(4 * LARGE); // large -> larger
        assert_eq!(v, (0..40_000).collect::<Vec<u32>>());
        v.truncate(10);
        v.shrink_to_fit(); // large -> small
        assert_eq!(v, (0..10).collect::<Vec<u32>>());
    }

    #[test]
    fn blocks_move_between_threads_intact() {
        // allocated on one thread, filled and freed on others: sums show no block was handed out twice
        let sums: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        let mut kept = Vec::new();
                        let mut total = 0.0f64;
                        for i in 0..50 {
                            kept.push(vec![(t * 50 + i) as f32; LARGE / 4 + 7 * i]);
                            if kept.len() > 3 {
                                let v = kept.remove(0);
                                total += v.iter().map(|&x| x as f64).sum::<f64>();
                            }
                        }
                        total
                            + kept
                                .iter()
                                .flat_map(|v| v.iter())
                                .map(|&x| x as f64)
                                .sum::<f64>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, &s) in sums.iter().enumerate() {
            let expected: f64 = (0..50)
                .map(|i| ((t * 50 + i) as f64) * (LARGE / 4 + 7 * i) as f64)
                .sum();
            assert_eq!(s, expected);
        }
    }
}
