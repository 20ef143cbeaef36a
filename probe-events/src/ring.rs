//! A per-CPU lock-free ring buffer of fixed-size records, in memory the
//! kernel provides (a `static` array of [`CpuRing`]s, one per CPU).
//!
//! # Protocol
//!
//! Each CPU ring has one writer (code running on that CPU, with interrupts
//! masked as probe handlers are) and at most one reader at a time (any CPU).
//! Nobody ever waits; there is no lock and no `unsafe`: every shared word is
//! an atomic, so a torn copy is detected, never undefined behaviour.
//!
//! * `head` is the sequence number the writer gives its next record; record
//!   `n` lives in slot `n % SLOTS`. `tail` is the sequence number the reader
//!   wants next; only the reader stores it.
//! * Each slot has a `stamp`: `2n + 1` while record `n` is being written,
//!   `2n + 2` once it is complete (0: never written).
//! * Writer, record `n = head`: (drop-newest mode only: if
//!   `n - tail >= SLOTS` the ring is full, count the record in `dropped` and
//!   return) store `stamp = 2n + 1` (relaxed), release fence, store the
//!   length and the words (relaxed), store `stamp = 2n + 2` (release), then
//!   `head = n + 1` (release). A writer nested on the same CPU (an NMI hitting
//!   a probe inside a write) finds `writing` set and counts its record in
//!   `dropped`.
//! * Reader, record `r = tail`: load `head` (acquire); if `head == r` the
//!   ring is empty. In overwrite mode, if `head - r > SLOTS` the records
//!   `r .. head - SLOTS` were overwritten unread: add them to `overwritten`
//!   and move `r` to `head - SLOTS`. Load the slot's `stamp` (acquire): if it
//!   is not `2r + 2`, a later record has started over it: count `r` in
//!   `overwritten` and go on with `r + 1`. Otherwise copy the length and the
//!   words (relaxed), acquire fence, load `stamp` again: if it changed, the
//!   writer overwrote the slot during the copy: count `r` lost, go on with
//!   `r + 1`. Else the copy is record `r`. Store `tail = r + 1` (release).
//! * The fence pair makes the check sound: if the copy saw any word of a
//!   later write, the writer's release fence (after its odd stamp) is
//!   synchronised with the reader's acquire fence, so the second stamp load
//!   sees that odd stamp or a later one.
//! * Accounting is exact: every sequence number the writer gives out is
//!   either returned by the reader or counted in `overwritten`, and every
//!   refused write is counted in `dropped`. `lost = dropped + overwritten`.
//!   In overwrite mode the overwritten records are counted when the reader
//!   reaches them.

use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What a writer does when its CPU's ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullMode {
    /// Overwrite the oldest record (Linux's default).
    Overwrite,
    /// Drop the new record.
    DropNewest,
}

struct Slot<const WORDS: usize> {
    stamp: AtomicU64,
    len: AtomicU32,
    words: [AtomicU64; WORDS],
}

impl<const WORDS: usize> Slot<WORDS> {
    const fn new() -> Self {
        Self {
            stamp: AtomicU64::new(0),
            len: AtomicU32::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}

/// One CPU's ring: `SLOTS` records of up to `WORDS` 64-bit words each.
pub struct CpuRing<const SLOTS: usize, const WORDS: usize> {
    head: AtomicU64,
    tail: AtomicU64,
    dropped: AtomicU64,
    overwritten: AtomicU64,
    writing: AtomicBool,
    slots: [Slot<WORDS>; SLOTS],
}

impl<const SLOTS: usize, const WORDS: usize> Default for CpuRing<SLOTS, WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize, const WORDS: usize> CpuRing<SLOTS, WORDS> {
    /// An empty ring (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            overwritten: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            slots: [const { Slot::new() }; SLOTS],
        }
    }

    /// Append a record (the writer: code on this ring's CPU). Returns false
    /// when the record was dropped (full in drop-newest mode, a nested write,
    /// or longer than `WORDS`); the drop is counted.
    pub fn write(&self, mode: FullMode, record: &[u64]) -> bool {
        if record.len() > WORDS || SLOTS == 0 || self.writing.swap(true, Ordering::Acquire) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let n = self.head.load(Ordering::Relaxed);
        if mode == FullMode::DropNewest
            && n.wrapping_sub(self.tail.load(Ordering::Acquire)) >= SLOTS as u64
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.writing.store(false, Ordering::Release);
            return false;
        }
        let slot = &self.slots[(n % SLOTS as u64) as usize];
        slot.stamp.store(2 * n + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.len.store(record.len() as u32, Ordering::Relaxed);
        for (w, &v) in slot.words.iter().zip(record) {
            w.store(v, Ordering::Relaxed);
        }
        slot.stamp.store(2 * n + 2, Ordering::Release);
        self.head.store(n + 1, Ordering::Release);
        self.writing.store(false, Ordering::Release);
        true
    }

    /// Take the oldest unread record (the reader: one at a time per ring).
    /// Copies it into `out` and returns its length in words.
    pub fn read(&self, mode: FullMode, out: &mut [u64; WORDS]) -> Option<usize> {
        let mut r = self.tail.load(Ordering::Relaxed);
        loop {
            let head = self.head.load(Ordering::Acquire);
            if head == r {
                return None;
            }
            if mode == FullMode::Overwrite && head - r > SLOTS as u64 {
                let skipped = head - SLOTS as u64 - r;
                self.overwritten.fetch_add(skipped, Ordering::Relaxed);
                r = head - SLOTS as u64;
            }
            let slot = &self.slots[(r % SLOTS as u64) as usize];
            let want = 2 * r + 2;
            let s1 = slot.stamp.load(Ordering::Acquire);
            let mut ok = s1 == want;
            let mut len = 0;
            if ok {
                len = (slot.len.load(Ordering::Relaxed) as usize).min(WORDS);
                for (o, w) in out.iter_mut().zip(&slot.words).take(len) {
                    *o = w.load(Ordering::Relaxed);
                }
                fence(Ordering::Acquire);
                ok = slot.stamp.load(Ordering::Relaxed) == s1;
            }
            r += 1;
            self.tail.store(r, Ordering::Release);
            if ok {
                return Some(len);
            }
            self.overwritten.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records lost so far: dropped by writers plus overwritten before the
    /// reader got to them.
    pub fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.overwritten.load(Ordering::Relaxed)
    }

    /// Records written (sequence numbers given out).
    pub fn written(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }
}

/// The rings of all CPUs, with the full-ring policy.
pub struct RingBuffer<'a, const SLOTS: usize, const WORDS: usize> {
    cpus: &'a [CpuRing<SLOTS, WORDS>],
    mode: FullMode,
}

impl<'a, const SLOTS: usize, const WORDS: usize> RingBuffer<'a, SLOTS, WORDS> {
    /// Use `cpus` (one ring per CPU, memory the kernel provides).
    pub const fn new(cpus: &'a [CpuRing<SLOTS, WORDS>], mode: FullMode) -> Self {
        Self { cpus, mode }
    }

    /// CPUs.
    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Write on `cpu` (must be the current CPU); false if dropped or `cpu`
    /// is out of range.
    pub fn write(&self, cpu: usize, record: &[u64]) -> bool {
        self.cpus
            .get(cpu)
            .is_some_and(|r| r.write(self.mode, record))
    }

    /// Read `cpu`'s oldest record.
    pub fn read(&self, cpu: usize, out: &mut [u64; WORDS]) -> Option<usize> {
        self.cpus.get(cpu)?.read(self.mode, out)
    }

    /// Lost records of `cpu`.
    pub fn lost(&self, cpu: usize) -> u64 {
        self.cpus.get(cpu).map_or(0, CpuRing::lost)
    }
}
