//! The per-CPU ring buffer: exact counts alone and under concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use probe_events::{CpuRing, FullMode, RingBuffer};

const WORDS: usize = 8;

/// A record for (cpu, n): a varying length and words derived from both.
fn record(cpu: u64, n: u64) -> ([u64; WORDS], usize) {
    let len = 2 + (n % (WORDS as u64 - 1)) as usize;
    let mut r = [0u64; WORDS];
    r[0] = cpu;
    r[1] = n;
    for (i, w) in r.iter_mut().enumerate().take(len).skip(2) {
        *w = (cpu << 48) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
    }
    (r, len)
}

fn check(out: &[u64], len: usize) -> (u64, u64) {
    let (cpu, n) = (out[0], out[1]);
    let (want, wlen) = record(cpu, n);
    assert_eq!(len, wlen, "length of record {n} of cpu {cpu}");
    assert_eq!(&out[..len], &want[..len], "torn record {n} of cpu {cpu}");
    (cpu, n)
}

#[test]
fn overwrite_counts_exactly() {
    let cpus: Vec<CpuRing<16, WORDS>> = (0..1).map(|_| CpuRing::new()).collect();
    let rb = RingBuffer::new(&cpus, FullMode::Overwrite);
    for n in 0..100 {
        let (r, len) = record(0, n);
        assert!(rb.write(0, &r[..len]));
    }
    let mut out = [0; WORDS];
    let mut got = vec![];
    while let Some(len) = rb.read(0, &mut out) {
        got.push(check(&out, len).1);
    }
    assert_eq!(got, (84..100).collect::<Vec<_>>());
    assert_eq!(rb.lost(0), 84);
}

#[test]
fn drop_newest_counts_exactly() {
    let cpus: Vec<CpuRing<16, WORDS>> = (0..1).map(|_| CpuRing::new()).collect();
    let rb = RingBuffer::new(&cpus, FullMode::DropNewest);
    let mut accepted = 0;
    for n in 0..100 {
        let (r, len) = record(0, n);
        accepted += rb.write(0, &r[..len]) as u64;
    }
    assert_eq!(accepted, 16);
    let mut out = [0; WORDS];
    let mut got = vec![];
    while let Some(len) = rb.read(0, &mut out) {
        got.push(check(&out, len).1);
    }
    assert_eq!(got, (0..16).collect::<Vec<_>>());
    assert_eq!(rb.lost(0), 84);
    // Room again after the drain.
    assert!(rb.write(0, &record(0, 100).0[..3]));
    assert!(!rb.write(0, &[0; WORDS + 1]));
    assert_eq!(rb.lost(0), 85);
}

fn concurrent(mode: FullMode, per_cpu: u64) {
    const CPUS: usize = 3;
    let rings: Arc<Vec<CpuRing<64, WORDS>>> = Arc::new((0..CPUS).map(|_| CpuRing::new()).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..CPUS)
        .map(|cpu| {
            let (rings, done) = (rings.clone(), done.clone());
            std::thread::spawn(move || {
                let rb = RingBuffer::new(&rings, mode);
                for n in 0..per_cpu {
                    let (r, len) = record(cpu as u64, n);
                    rb.write(cpu, &r[..len]);
                    if n % 1024 == 0 {
                        std::thread::yield_now();
                    }
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    let rb = RingBuffer::new(&rings, mode);
    let mut out = [0; WORDS];
    let mut received = [0u64; CPUS];
    let mut last: [Option<u64>; CPUS] = [None; CPUS];
    loop {
        let finished = done.load(Ordering::Acquire) == CPUS;
        let mut any = false;
        for cpu in 0..CPUS {
            while let Some(len) = rb.read(cpu, &mut out) {
                let (c, n) = check(&out, len);
                assert_eq!(c, cpu as u64);
                assert!(last[cpu].is_none_or(|l| n > l), "order on cpu {cpu}");
                last[cpu] = Some(n);
                received[cpu] += 1;
                any = true;
            }
        }
        if finished && !any {
            break;
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    for cpu in 0..CPUS {
        assert_eq!(
            received[cpu] + rb.lost(cpu),
            per_cpu,
            "cpu {cpu}: {} read, {} lost",
            received[cpu],
            rb.lost(cpu)
        );
        assert!(received[cpu] >= 64, "cpu {cpu} read only {}", received[cpu]);
        // The newest record always survives in overwrite mode.
        if mode == FullMode::Overwrite {
            assert_eq!(last[cpu], Some(per_cpu - 1));
        }
    }
}

/// Records per writer: fewer under Miri, which checks every access.
const PER_CPU: u64 = if cfg!(miri) { 300 } else { 200_000 };

#[test]
fn concurrent_writers_and_reader_overwrite() {
    concurrent(FullMode::Overwrite, PER_CPU);
}

#[test]
fn concurrent_writers_and_reader_drop_newest() {
    concurrent(FullMode::DropNewest, PER_CPU);
}
