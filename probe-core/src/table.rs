//! `ProbeTable`: the lock-free map from (address space, address) to a probe
//! point, read by the trap path in O(1) while registration changes it.
//!
//! Open addressing with linear probing over `2 × N` buckets for `N` points
//! (load factor at most ½). A bucket holds `point + 1`, 0 for "never used"
//! and [`TOMBSTONE`] for "removed". Writers hold the registration lock;
//! readers take no lock:
//! - insert fills the point first, then publishes its index (Release);
//! - remove turns the bucket into a tombstone; a run of tombstones followed
//!   by an empty bucket becomes empty again (a reader stopping there early
//!   cannot miss anything: nothing lies after it in that run);
//! - a point is freed only after a grace period following its removal, so a
//!   reader that found its index never sees it reused.

use crate::sync::atomic::{AtomicU32, Ordering};

use crate::services::Space;

const EMPTY: u32 = 0;
const TOMBSTONE: u32 = u32::MAX;

/// See the module documentation.
pub(crate) struct ProbeTable<const N: usize> {
    /// `2 × N` buckets, contiguous (bucket `i` is `buckets[i / 2][i % 2]`).
    buckets: [[AtomicU32; 2]; N],
}

/// A lookup key: the address space and the address (every space, including
/// `Space::User(usize::MAX)`, is a distinct key).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Key {
    pub(crate) space: Space,
    pub(crate) addr: usize,
}

impl<const N: usize> ProbeTable<N> {
    pub(crate) const fn new() -> Self {
        Self {
            buckets: [const { [const { AtomicU32::new(EMPTY) }; 2] }; N],
        }
    }

    /// Under loom: [`Self::new`], its atomics created now (see `sync`).
    #[cfg(all(test, loom))]
    pub(crate) fn new_loom() -> Self {
        let t = Self::new();
        t.buckets.iter().flatten().for_each(AtomicU32::touch);
        t
    }

    #[inline(always)]
    fn bucket(&self, i: usize) -> &AtomicU32 {
        &self.buckets[i >> 1][i & 1]
    }

    #[inline(always)]
    fn next(i: usize) -> usize {
        if i + 1 == 2 * N {
            0
        } else {
            i + 1
        }
    }

    #[inline(always)]
    fn start(key: Key) -> usize {
        // Fibonacci hashing of both parts; the low bits of code addresses are
        // poorly distributed, the high bits of the product are not.
        let space = match key.space {
            Space::Kernel => 0,
            Space::User(id) => (id as u64).rotate_left(29) ^ 0x5bd1_e995,
        };
        let h = (key.addr as u64 ^ space).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Range reduction by multiplication (Lemire): no division.
        ((h as u128 * (2 * N) as u128) >> 64) as usize
    }

    /// The point stored under `key`; `key_of` reads a point's key.
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    pub(crate) fn lookup(&self, key: Key, key_of: impl Fn(u32) -> Key) -> Option<u32> {
        if N == 0 {
            return None;
        }
        let mut i = Self::start(key);
        for _ in 0..2 * N {
            match self.bucket(i).load(Ordering::Acquire) {
                EMPTY => return None,
                TOMBSTONE => {}
                v if key_of(v - 1) == key => return Some(v - 1),
                _ => {}
            }
            i = Self::next(i);
        }
        None
    }

    /// Publish `point` under `key` (registration lock held; `key` absent).
    pub(crate) fn insert(&self, key: Key, point: u32) {
        let mut i = Self::start(key);
        for _ in 0..2 * N {
            let b = self.bucket(i);
            let v = b.load(Ordering::Relaxed);
            if v == EMPTY || v == TOMBSTONE {
                b.store(point + 1, Ordering::Release);
                return;
            }
            i = Self::next(i);
        }
        unreachable!("probe table has 2N buckets for N points");
    }

    /// Unpublish `point` stored under `key` (registration lock held).
    pub(crate) fn remove(&self, key: Key, point: u32) {
        let mut i = Self::start(key);
        for _ in 0..2 * N {
            let b = self.bucket(i);
            match b.load(Ordering::Relaxed) {
                EMPTY => return,
                v if v == point + 1 => {
                    b.store(TOMBSTONE, Ordering::Release);
                    self.reclaim_tombstones(i);
                    return;
                }
                _ => {}
            }
            i = Self::next(i);
        }
    }

    /// Turn the run of tombstones ending at `i` back into empty buckets when
    /// the bucket after `i` is empty.
    fn reclaim_tombstones(&self, mut i: usize) {
        if self.bucket((i + 1) % (2 * N)).load(Ordering::Relaxed) != EMPTY {
            return;
        }
        while self.bucket(i).load(Ordering::Relaxed) == TOMBSTONE {
            self.bucket(i).store(EMPTY, Ordering::Release);
            i = (i + 2 * N - 1) % (2 * N);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn key(addr: usize) -> Key {
        Key {
            space: Space::Kernel,
            addr,
        }
    }

    #[test]
    fn insert_lookup_remove_with_collisions() {
        let t = ProbeTable::<8>::new();
        let keys: [Key; 8] = core::array::from_fn(|i| key(0x1000 + i * 16));
        for (i, k) in keys.iter().enumerate() {
            t.insert(*k, i as u32);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.lookup(*k, |p| keys[p as usize]), Some(i as u32));
        }
        assert_eq!(t.lookup(key(0x9999), |p| keys[p as usize]), None);
        for (i, k) in keys.iter().enumerate().step_by(2) {
            t.remove(*k, i as u32);
        }
        for (i, k) in keys.iter().enumerate() {
            let want = if i % 2 == 0 { None } else { Some(i as u32) };
            assert_eq!(t.lookup(*k, |p| keys[p as usize]), want);
        }
        // every bucket that is not a live entry is reusable
        for (i, k) in keys.iter().enumerate().step_by(2) {
            t.insert(*k, i as u32);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.lookup(*k, |p| keys[p as usize]), Some(i as u32));
        }
    }

    #[test]
    fn spaces_are_distinct_keys() {
        let t = ProbeTable::<4>::new();
        let a = Key {
            space: Space::User(0),
            addr: 0x4000,
        };
        let b = Key {
            space: Space::User(1),
            addr: 0x4000,
        };
        let keys = [a, b];
        t.insert(a, 0);
        assert_eq!(t.lookup(b, |p| keys[p as usize]), None);
        t.insert(b, 1);
        assert_eq!(t.lookup(b, |p| keys[p as usize]), Some(1));
        assert_eq!(t.lookup(a, |p| keys[p as usize]), Some(0));
    }

    #[test]
    fn user_space_usize_max_is_not_the_kernel() {
        let t = ProbeTable::<4>::new();
        let user = Key {
            space: Space::User(usize::MAX),
            addr: 0x4000,
        };
        let kernel = Key {
            space: Space::Kernel,
            addr: 0x4000,
        };
        let keys = [user];
        t.insert(user, 0);
        assert_eq!(t.lookup(kernel, |p| keys[p as usize]), None);
        assert_eq!(t.lookup(user, |p| keys[p as usize]), Some(0));
    }
}

/// Exhaustive interleavings (`RUSTFLAGS="--cfg loom"`): one writer (the
/// registration lock holder) against a lock-free reader (the trap path).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    /// Two buckets per point: 4 buckets, so three colliding keys fill a
    /// probe run and removal makes tombstones and reclaims them.
    const N: usize = 2;
    const POINTS: usize = 3;

    /// Three kernel addresses whose probe runs start in the same bucket.
    fn colliding() -> [usize; POINTS] {
        let start = |addr| {
            ProbeTable::<N>::start(Key {
                space: Space::Kernel,
                addr,
            })
        };
        let first = 0x1000;
        let mut found = [first; POINTS];
        let mut n = 1;
        let mut addr = first;
        while n < POINTS {
            addr += 4;
            if start(addr) == start(first) {
                found[n] = addr;
                n += 1;
            }
        }
        found
    }

    /// The points' keys, as the engine keeps them: written before the point
    /// is published (Relaxed: the table's Release/Acquire must order them),
    /// read by the reader through `key_of`.
    struct Points {
        addr: [AtomicUsize; POINTS],
    }

    impl Points {
        fn new() -> Self {
            Self {
                addr: core::array::from_fn(|_| AtomicUsize::new(0)),
            }
        }

        fn set(&self, point: u32, addr: usize) {
            self.addr[point as usize].store(addr, Ordering::Relaxed);
        }

        /// A point found in the table has its key published (not the 0
        /// it had before the insert).
        fn key_of(&self, point: u32) -> Key {
            let addr = self.addr[point as usize].load(Ordering::Relaxed);
            assert_ne!(addr, 0, "point {point} found before its key is visible");
            key(addr)
        }
    }

    fn key(addr: usize) -> Key {
        Key {
            space: Space::Kernel,
            addr,
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = None;
        b.check(f);
    }

    /// A key that stays registered is found by every lookup while the keys
    /// before it in its probe run are removed (tombstones), reinserted and
    /// removed again (reclaimed); a lookup of a changing key sees it or not,
    /// never another point, and always with its key published.
    #[test]
    fn loom_lookup_against_insert_and_remove() {
        let [c, a, b] = colliding();
        model(move || {
            let table = Arc::new(ProbeTable::<N>::new_loom());
            let points = Arc::new(Points::new());
            // c heads the run, a follows it: a's lookup passes c's bucket.
            points.set(0, c);
            table.insert(key(c), 0);
            points.set(1, a);
            table.insert(key(a), 1);

            // The reader (the trap path) runs in a thread of its own, the
            // writer (registration) in the model's main thread.
            let reader = {
                let (table, points) = (table.clone(), points.clone());
                thread::spawn(move || {
                    let lookup = |addr| table.lookup(key(addr), |p| points.key_of(p));
                    assert_eq!(lookup(a), Some(1), "a live key was missed");
                    let seen_b = lookup(b);
                    assert!(seen_b.is_none() || seen_b == Some(2), "{seen_b:?}");
                    let seen_c = lookup(c);
                    assert!(seen_c.is_none() || seen_c == Some(0), "{seen_c:?}");
                    assert_eq!(lookup(a), Some(1), "a live key was missed");
                })
            };
            table.remove(key(c), 0);
            points.set(2, b);
            table.insert(key(b), 2);
            table.remove(key(b), 2);
            reader.join().unwrap();
            let lookup = |addr| table.lookup(key(addr), |p| points.key_of(p));
            assert_eq!(lookup(a), Some(1));
            assert_eq!(lookup(b), None);
            assert_eq!(lookup(c), None);
        });
    }

    /// The last key of a run is removed and its tombstones reclaimed while
    /// a reader looks up the keys before it and the key itself.
    #[test]
    fn loom_lookup_against_remove_with_reclaim() {
        let [c, a, b] = colliding();
        model(move || {
            let table = Arc::new(ProbeTable::<N>::new_loom());
            let points = Arc::new(Points::new());
            for (p, addr) in [c, a, b].into_iter().enumerate() {
                points.set(p as u32, addr);
                table.insert(key(addr), p as u32);
            }
            let reader = {
                let (table, points) = (table.clone(), points.clone());
                thread::spawn(move || {
                    let lookup = |addr| table.lookup(key(addr), |p| points.key_of(p));
                    assert_eq!(lookup(c), Some(0), "a live key was missed");
                    let seen_b = lookup(b);
                    assert!(seen_b.is_none() || seen_b == Some(2), "{seen_b:?}");
                    let seen_a = lookup(a);
                    assert!(seen_a.is_none() || seen_a == Some(1), "{seen_a:?}");
                })
            };
            // a becomes a tombstone between two live keys, then b goes and
            // the run a..b is reclaimed.
            table.remove(key(a), 1);
            table.remove(key(b), 2);
            reader.join().unwrap();
            let lookup = |addr| table.lookup(key(addr), |p| points.key_of(p));
            assert_eq!(lookup(c), Some(0));
            assert_eq!(lookup(a), None);
            assert_eq!(lookup(b), None);
        });
    }
}
