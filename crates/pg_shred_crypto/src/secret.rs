//! Memory for key material: [`Secret<T>`] is an owning pointer (like `Box<T>`) whose storage
//! comes from pages that are excluded from core dumps (`madvise(MADV_DONTDUMP)`, Linux) and
//! is overwritten with zeros when the value is dropped.
//!
//! Root keys, KEKs and DEKs (with their AES key schedules) live in such memory, so a core
//! dump of a crashed backend does not carry them. Slots are carved from anonymous `mmap`
//! chunks, grouped in size classes of 32-byte steps (a DEK at rest takes one 32-byte slot), and
//! reused after being zeroed; chunks are never returned to the system. If `mmap` fails the value goes to the ordinary heap (still
//! zeroed on drop).
//!
//! Limits: a value is built on the stack and then moved into its slot, so short-lived copies
//! may remain in stack memory; swap is not prevented (no `mlock`, whose limit is small for
//! unprivileged processes). Run database servers without swap, or with encrypted swap.
//!
//! When PostgreSQL raises an ERROR while Rust code holds a `Secret`, pgrx turns the ERROR
//! into a Rust panic that unwinds through the Rust frames, so `Drop` runs and the slot is
//! zeroed before control returns to PostgreSQL.

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Mutex;

use zeroize::Zeroize;

/// Slot granularity and the largest alignment a slot provides, in bytes.
const SLOT_ALIGN: usize = 32;
/// Smallest chunk requested from the system, in bytes.
const MIN_CHUNK: usize = 64 * 1024;

struct Class {
    slot_size: usize,
    /// Addresses of free, zeroed slots.
    free: Vec<usize>,
}

/// Size classes, each with its free slots. A backend is single-threaded; the mutex keeps the
/// pool sound in multi-threaded test and bench programs. It is never held across a call that
/// can raise a PostgreSQL ERROR.
static POOL: Mutex<Vec<Class>> = Mutex::new(Vec::new());

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Map a chunk of at least `len` bytes excluded from core dumps; `None` if `mmap` fails.
fn map_chunk(len: usize) -> Option<(usize, usize)> {
    let page = page_size();
    let len = len.div_ceil(page) * page;
    // SAFETY: an anonymous private mapping with no address hint; checked for MAP_FAILED.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return None;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range is the mapping just created. Failure only means the pages stay in
    // core dumps, which is no worse than the ordinary heap.
    unsafe {
        libc::madvise(addr, len, libc::MADV_DONTDUMP);
    }
    Some((addr as usize, len))
}

/// A zeroed slot of `size` bytes (a multiple of [`SLOT_ALIGN`]), or `None` if no memory could
/// be mapped.
fn take_slot(size: usize) -> Option<NonNull<u8>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let idx = match pool.iter().position(|c| c.slot_size == size) {
        Some(i) => i,
        None => {
            pool.push(Class { slot_size: size, free: Vec::new() });
            pool.len() - 1
        }
    };
    let class = &mut pool[idx];
    if class.free.is_empty() {
        let (base, len) = map_chunk(MIN_CHUNK.max(size * 8))?;
        // Fresh anonymous pages are zero already. Hand out low addresses first.
        class.free.extend((0..len / size).rev().map(|i| base + i * size));
    }
    class.free.pop().and_then(|a| NonNull::new(a as *mut u8))
}

fn return_slot(size: usize, addr: NonNull<u8>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(class) = pool.iter_mut().find(|c| c.slot_size == size) {
        class.free.push(addr.as_ptr() as usize);
    }
}

/// An owned `T` in memory excluded from core dumps, zeroed when dropped.
///
/// `T`'s own `Drop` runs first (e.g. the AES key schedule's zeroizing drop), then every byte
/// of the slot is overwritten with zeros (`zeroize`, which the compiler may not elide).
pub struct Secret<T> {
    ptr: NonNull<T>,
    /// True when the value lives on the ordinary heap (`mmap` failed).
    heap: bool,
}

// Owning pointer, like Box<T>.
unsafe impl<T: Send> Send for Secret<T> {}
unsafe impl<T: Sync> Sync for Secret<T> {}

impl<T> Secret<T> {
    /// Slot size of a `T` in bytes.
    const SIZE: usize = if std::mem::size_of::<T>() == 0 {
        SLOT_ALIGN
    } else {
        std::mem::size_of::<T>().div_ceil(SLOT_ALIGN) * SLOT_ALIGN
    };

    /// Move `value` into protected memory.
    pub fn new(value: T) -> Self {
        const { assert!(std::mem::align_of::<T>() <= SLOT_ALIGN) };
        let size = Self::SIZE;
        let (raw, heap) = match take_slot(size) {
            Some(p) => (p, false),
            None => {
                let layout = Layout::from_size_align(size, SLOT_ALIGN).unwrap_or(Layout::new::<T>());
                // SAFETY: size is non-zero.
                let p = unsafe { std::alloc::alloc_zeroed(layout) };
                match NonNull::new(p) {
                    Some(p) => (p, true),
                    None => std::alloc::handle_alloc_error(layout),
                }
            }
        };
        let ptr = raw.cast::<T>();
        // SAFETY: the slot is at least size_of::<T>() bytes, aligned to SLOT_ALIGN >= align_of::<T>(),
        // and owned by nobody else.
        unsafe { ptr.as_ptr().write(value) };
        Secret { ptr, heap }
    }

    /// Address of the slot (tests check that its pages are excluded from core dumps).
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Length of the slot in bytes: what `Drop` overwrites with zeros (tests inspect it).
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn slot_len(&self) -> usize {
        Self::SIZE
    }
}

impl<T> Deref for Secret<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised in new(), valid until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for Secret<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: initialised in new(), uniquely owned.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for Secret<T> {
    fn drop(&mut self) {
        // SAFETY: the value was written in new() and is dropped exactly once, here; afterwards
        // the slot is plain bytes that nobody else references.
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            // Word by word: the slot is SLOT_ALIGN-aligned and a multiple of it long.
            let words = std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u64>(), Self::SIZE / 8);
            words.zeroize();
        }
        if self.heap {
            if let Ok(layout) = Layout::from_size_align(Self::SIZE, SLOT_ALIGN) {
                // SAFETY: allocated in new() with this layout.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
            }
        } else {
            return_slot(Self::SIZE, self.ptr.cast());
        }
    }
}
