//! Fixture shared by the engine tests: a world with a library of Toy
//! functions loaded in kernel memory, an engine over it, and handlers that
//! count and record what they saw.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use custom_arch::arch::ToyRegs;
use custom_arch::isa::asm::*;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::World;
use custom_arch::{leak_engine, ToyEngine};
use probe_core::{EntryAction, PreAction, ProbeContext, ProbeInfo, Space};
use probe_hal::Registers;

pub const ARITH: usize = 0x1000; // returns 13
pub const BRANCHY: usize = 0x1100; // r1 == 3 ? 100 : 200
pub const CALLER: usize = 0x1200; // arith() + 1 = 14
pub const JUMPY: usize = 0x1300; // 2
pub const LDPC_FN: usize = 0x1400; // 0x1122334455667788
pub const MEM_FN: usize = 0x1500; // 42
pub const LOAD_FN: usize = 0x1600; // *(r1)
pub const LOAD_FIXUP: usize = 0x1620; // r1 = 0xdead; ret
pub const RECUR: usize = 0x1700; // sum(0..=r1)
pub const CLI_FN: usize = 0x1800; // 1, interrupts off
pub const LLSC_FN: usize = 0x1900; // atomic increment of *(r2)
pub const REFUSED_FN: usize = 0x1a00; // brk, stepend, halt, sys
pub const NOPS: usize = 0x4000; // 256 nops; returns r1 unchanged
pub const BLACK: usize = 0x5000; // blacklisted range 0x5000..0x5100
pub const STUBS: usize = 0x3000;
pub const BLACKLIST: std::ops::Range<usize> = BLACK..BLACK + 0x100;
pub const LDPC_VALUE: u64 = 0x1122_3344_5566_7788;

/// Offsets of every instruction of `ARITH` and friends.
pub const ARITH_INSNS: &[usize] = &[0, 4, 8, 0xa, 0xc];
pub const BRANCHY_INSNS: &[usize] = &[0, 4, 8, 0xc, 0x10, 0x14];
pub const CALLER_INSNS: &[usize] = &[0, 2, 6, 8, 0xc];
pub const JUMPY_INSNS: &[usize] = &[0, 4, 0xc, 0xe];
pub const RECUR_INSNS: &[usize] = &[0, 4, 8, 0xa, 0xc, 0x10, 0x14, 0x16, 0x18, 0x1a, 0x20];

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn rel16(from: usize, to: usize) -> i16 {
    (to as i64 - from as i64) as i16
}

/// The function library, as placed at the addresses above.
pub fn library() -> Vec<(usize, &'static str, Vec<u8>)> {
    vec![
        (
            ARITH,
            "arith",
            cat(&[&li(1, 5), &li(2, 7), &add(1, 2), &inc(1), &ret()]),
        ),
        (
            BRANCHY,
            "branchy",
            cat(&[
                &li(2, 3),
                &beq(1, 2, 12),
                &li(1, 200),
                &ret(),
                &nop(),
                &li(1, 100),
                &ret(),
            ]),
        ),
        (
            CALLER,
            "caller",
            cat(&[
                &push(14),
                &call(rel16(CALLER + 2, ARITH)),
                &pop(14),
                &addi(1, 1, 1),
                &ret(),
            ]),
        ),
        (
            JUMPY,
            "jumpy",
            cat(&[&li(1, 1), &jmp(8), &li(1, 99), &inc(1), &ret()]),
        ),
        (LDPC_FN, "ldpc_fn", cat(&[&ldpc(1, 0x40), &ret()])),
        (
            MEM_FN,
            "mem_fn",
            cat(&[&li(2, 42), &st(2, 15, -8), &ld(1, 15, -8), &ret()]),
        ),
        (LOAD_FN, "load_fn", cat(&[&ld(1, 1, 0), &ret()])),
        (
            LOAD_FIXUP,
            "load_fixup",
            cat(&[&li(1, 0xdead_u16 as i16), &ret()]),
        ),
        (
            RECUR,
            "recur",
            cat(&[
                &li(2, 0),
                &beq(1, 2, 0x1c),
                &push(14),
                &push(1),
                &addi(1, 1, -1),
                &call(-0x10),
                &pop(2),
                &pop(14),
                &add(1, 2),
                &ret(),
                &nop(),
                &nop(),
                &ret(),
            ]),
        ),
        (CLI_FN, "cli_fn", cat(&[&cli(), &li(1, 1), &ret()])),
        (
            LLSC_FN,
            "llsc_fn",
            cat(&[
                &ll(1, 2),
                &addi(1, 1, 1),
                &sc(1, 2),
                &li(3, 0),
                &beq(1, 3, -14),
                &ret(),
            ]),
        ),
        (
            REFUSED_FN,
            "refused_fn",
            cat(&[
                &brk(0),
                &[custom_arch::isa::op::STEPEND, 0],
                &halt(),
                &sys(),
                &ret(),
            ]),
        ),
        (NOPS, "nops", {
            let mut v = Vec::new();
            for _ in 0..256 {
                v.extend_from_slice(&nop());
            }
            v.extend_from_slice(&ret());
            v
        }),
    ]
}

pub struct Fx<const P: usize = 64> {
    pub w: &'static World,
    pub e: &'static ToyEngine<P>,
}

impl<const P: usize> Fx<P> {
    pub fn new() -> Self {
        let w = World::leak(&[BLACKLIST]);
        for (addr, name, code) in library() {
            w.load(probe_core::Space::Kernel, addr, &code);
            w.add_symbol(name, addr, code.len());
        }
        w.load(Space::Kernel, LDPC_FN + 0x40, &LDPC_VALUE.to_le_bytes());
        w.fixups.lock().unwrap().push((LOAD_FN, LOAD_FIXUP));
        let e = leak_engine::<P>(w);
        Self { w, e }
    }

    /// Load the library into user space `asid` too.
    pub fn load_user(&self, asid: usize) {
        for (addr, _, code) in library() {
            self.w.load(Space::User(asid), addr, &code);
        }
        self.w
            .load(Space::User(asid), LDPC_FN + 0x40, &LDPC_VALUE.to_le_bytes());
    }

    /// A CPU set up to call `func` with `args` in r1.. and halt on return.
    pub fn cpu_calling(
        &self,
        cpu: usize,
        task: usize,
        space: Space,
        func: usize,
        args: &[u64],
    ) -> Cpu {
        let stub = STUBS + cpu * 0x10 + task * 0x100;
        let code = cat(&[&call(rel16(stub, func)), &halt()]);
        self.w.load(space, stub, &code);
        let mut c = Cpu::new(
            cpu,
            task,
            space,
            stub,
            0x1_0000 - cpu * 0x1000 - task * 0x200,
        );
        for (i, a) in args.iter().enumerate() {
            c.regs.r[1 + i] = *a;
        }
        c
    }

    /// How often each address runs in an unprobed call of `func`.
    pub fn visits(&self, func: usize, args: &[u64]) -> std::collections::HashMap<usize, u64> {
        let mut c = self.cpu_calling(0, 0, Space::Kernel, func, args);
        assert_eq!(c.run(self.w, self.e, 100_000), Stop::Halted);
        c.visits
    }

    /// Call `func` on CPU 0, task 0, in the kernel; the registers at halt.
    pub fn call(&self, func: usize, args: &[u64]) -> ToyRegs {
        self.call_in(Space::Kernel, 0, func, args)
    }

    /// Call `func` in `space` as `task` on CPU 0.
    pub fn call_in(&self, space: Space, task: usize, func: usize, args: &[u64]) -> ToyRegs {
        let mut c = self.cpu_calling(0, task, space, func, args);
        let stop = c.run(self.w, self.e, 100_000);
        assert_eq!(
            stop,
            Stop::Halted,
            "call of {func:#x} did not return (pc {:#x})",
            c.regs.pc
        );
        c.regs
    }

    /// Step `cpu` until its pc is inside an out-of-line slot (a hit whose
    /// step is in flight).
    pub fn step_into_slot(&self, cpu: &mut Cpu) {
        while (cpu.regs.pc as usize) < custom_arch::world::SLOT_AREA {
            assert_eq!(cpu.step(self.w, self.e), None);
        }
    }

    /// Step `cpu` until its task holds at least `n` return instances and
    /// its pc is outside every slot.
    pub fn step_until_pending(&self, cpu: &mut Cpu, n: usize) {
        while self.e.pending_returns(&self.w.tasks[cpu.task]) < n
            || cpu.regs.pc as usize >= custom_arch::world::SLOT_AREA
        {
            assert_eq!(cpu.step(self.w, self.e), None);
        }
    }

    /// Everything an error must leave unchanged.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            // the library (0x1000..0x3000) and the nops (0x4000..0x5000);
            // 0x3000.. holds the call stubs, rewritten by every call
            kernel_text: [
                self.w.peek(Space::Kernel, 0x1000, 0x2000),
                self.w.peek(Space::Kernel, 0x4000, 0x1000),
            ]
            .concat(),
            probes: self.e.list::<256>().into_iter().collect(),
            slots: self.e.slot_usage(),
            pages: self.w.pages_held(),
            free_instances: self.e.free_instances(),
        }
    }
}

#[derive(PartialEq, Eq)]
pub struct Snapshot {
    pub kernel_text: Vec<u8>,
    pub probes: Vec<ProbeInfo>,
    pub slots: (usize, usize),
    pub pages: usize,
    pub free_instances: usize,
}

/// What handlers saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub pre: AtomicUsize,
    pub post: AtomicUsize,
    pub entry: AtomicUsize,
    pub ret: AtomicUsize,
    pub r1_pre: AtomicU64,
    pub r1_post: AtomicU64,
    pub flags_pre: AtomicU64,
    pub values: Mutex<Vec<u64>>,
    pub pcs: Mutex<Vec<usize>>,
}

pub fn seen() -> &'static Seen {
    Box::leak(Box::default())
}

pub fn seen_of(ctx: &ProbeContext) -> &'static Seen {
    ctx.data
        .downcast_ref::<Seen>()
        .expect("handler data is a Seen")
}

pub fn pre_count(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let s = seen_of(ctx);
    s.pre.fetch_add(1, Ordering::SeqCst);
    s.r1_pre.store(regs.gpr(1) as u64, Ordering::SeqCst);
    s.flags_pre.store(regs.flags() as u64, Ordering::SeqCst);
    s.pcs.lock().unwrap().push(regs.pc());
    PreAction::Continue
}

pub fn post_count(ctx: &ProbeContext, regs: &mut dyn Registers) {
    let s = seen_of(ctx);
    s.post.fetch_add(1, Ordering::SeqCst);
    s.r1_post.store(regs.gpr(1) as u64, Ordering::SeqCst);
}

/// A second pre-handler (different function, so not a duplicate).
pub fn pre_count_b(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    pre_count(ctx, regs)
}

pub fn entry_count(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let s = seen_of(ctx);
    s.entry.fetch_add(1, Ordering::SeqCst);
    let arg = regs.arg(0).unwrap() as u64;
    if data.len() >= 8 {
        data[..8].copy_from_slice(&arg.to_le_bytes());
    }
    EntryAction::Track
}

pub fn ret_record(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let s = seen_of(ctx);
    s.ret.fetch_add(1, Ordering::SeqCst);
    s.values.lock().unwrap().push(regs.return_value() as u64);
    if data.len() >= 8 {
        let arg = u64::from_le_bytes(data[..8].try_into().unwrap());
        s.pcs.lock().unwrap().push(arg as usize);
    }
}

pub fn hits(s: &Seen) -> usize {
    s.pre.load(Ordering::SeqCst)
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sum: u64 = self
            .kernel_text
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64 + 1) * *b as u64)
            .sum();
        f.debug_struct("Snapshot")
            .field("kernel_text_checksum", &sum)
            .field("probes", &self.probes)
            .field("slots", &self.slots)
            .field("pages", &self.pages)
            .field("free_instances", &self.free_instances)
            .finish()
    }
}

/// The grace period of tests whose CPUs are real threads: `synchronize`
/// waits until every CPU thread went through a quiescent point (a
/// completed step with its pc outside the slot area), as a kernel's would.
pub struct Quiescence {
    /// Quiescent points each CPU thread went through.
    passed: Vec<AtomicU64>,
    /// The thread is done (quiescent for good).
    done: Vec<std::sync::atomic::AtomicBool>,
    /// Quiescent only between calls (pc in the call stubs), as a task is
    /// for Linux's `synchronize_rcu_tasks` only at a voluntary switch: a
    /// CPU that left a slot into the middle of a region about to be
    /// covered by an optimised probe's jump is not quiescent there.
    strict: std::sync::atomic::AtomicBool,
}

impl Quiescence {
    /// For `threads` CPU threads, installed as `w`'s grace period.
    pub fn install(w: &World, threads: usize) -> std::sync::Arc<Self> {
        let q = std::sync::Arc::new(Self {
            passed: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            done: (0..threads)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            strict: std::sync::atomic::AtomicBool::new(false),
        });
        let waiter = q.clone();
        w.on_synchronize(move || waiter.wait_for_all());
        q
    }

    /// Count quiescent points only between calls (see `strict`).
    pub fn only_between_calls(&self) {
        self.strict.store(true, Ordering::SeqCst);
    }

    fn quiescent_at(&self, pc: usize) -> bool {
        if self.strict.load(Ordering::SeqCst) {
            (STUBS..STUBS + 0x1000).contains(&pc)
        } else {
            pc < custom_arch::world::SLOT_AREA
        }
    }

    fn wait_for_all(&self) {
        let seen: Vec<u64> = self
            .passed
            .iter()
            .map(|p| p.load(Ordering::SeqCst))
            .collect();
        for (i, s) in seen.iter().enumerate() {
            while self.passed[i].load(Ordering::SeqCst) == *s
                && !self.done[i].load(Ordering::SeqCst)
            {
                std::thread::yield_now();
            }
        }
    }

    /// On CPU thread `k`: run `start` (a call set up by `Fx::cpu_calling`)
    /// `calls` times, each to its halt with r1 == `r1`, going through a
    /// quiescent point after every step outside the slot area. The thread
    /// counts as done when this returns or panics.
    pub fn run_calls<const P: usize>(
        &self,
        k: usize,
        (w, e): (&World, &ToyEngine<P>),
        start: &Cpu,
        calls: usize,
        r1: u64,
    ) {
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.done[k]);
        for _ in 0..calls {
            self.one_call(k, (w, e), start, r1);
        }
    }

    /// As [`Self::run_calls`], until `stop` is set; returns the calls made.
    pub fn run_calls_until<const P: usize>(
        &self,
        k: usize,
        (w, e): (&World, &ToyEngine<P>),
        start: &Cpu,
        stop: &std::sync::atomic::AtomicBool,
        r1: u64,
    ) -> u64 {
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.done[k]);
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            self.one_call(k, (w, e), start, r1);
            n += 1;
            // Let the registering thread run (more threads than cores).
            std::thread::yield_now();
        }
        n
    }

    fn one_call<const P: usize>(
        &self,
        k: usize,
        (w, e): (&World, &ToyEngine<P>),
        start: &Cpu,
        r1: u64,
    ) {
        {
            let mut cpu = start.clone();
            let mut stop = None;
            while stop.is_none() {
                stop = cpu.step(w, e);
                if self.quiescent_at(cpu.regs.pc as usize) {
                    self.passed[k].fetch_add(1, Ordering::SeqCst);
                    // A quiescent point is a full barrier (a kernel's
                    // context switch or IPI is): the next trap sees every
                    // unlink the grace period that counted it published.
                    std::sync::atomic::fence(Ordering::SeqCst);
                }
            }
            assert_eq!(stop, Some(Stop::Halted));
            assert_eq!(cpu.regs.r[1], r1, "result of the call");
        }
    }
}
