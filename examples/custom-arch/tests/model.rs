//! Model-based sequence testing: random sequences of registration calls,
//! instruction steps on two CPUs, signals during user steps, task exits,
//! forks and address-space teardown, checked after every operation against
//! a plain reference model of what the engine owes:
//! - the original bytes are back wherever no enabled probe is;
//! - every probe's hit count is what the model counted (each time a CPU
//!   executes at a probed address while the probe is enabled), and no
//!   probe misses a hit (handlers never re-enter here);
//! - no handler of an unregistered probe ever runs;
//! - a slot a suspended context will return to is never changed;
//! - return instances are conserved (free + pending = pool size).
//!
//! Sequences are seeded and shrunk by proptest. `MODEL_CASES` (default 64)
//! and `MODEL_OPS` (default 120) scale the run; `cargo xtask soak` runs it
//! with ten million operations and prints the count.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use custom_arch::isa::asm::*;
use custom_arch::isa::{op, SP};
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::{SLOT_AREA, TASKS};
use probe_core::{
    EntryAction, Kprobe, Kretprobe, PreAction, ProbeContext, ProbeErrorKind, ProbeId, ProbeSpec,
    Space,
};
use probe_hal::Registers;
use proptest::prelude::*;

/// Return instances in the Toy engine's pool.
const POOL: usize = 16;
/// The CPU registration calls are made from (never runs code).
const ADMIN_CPU: usize = 3;

static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static OPS_RUN: AtomicU64 = AtomicU64::new(0);

/// One probe's identity and what its handlers saw.
#[derive(Default)]
struct Token {
    live: AtomicBool,
    pre: AtomicU64,
    post: AtomicU64,
    entry: AtomicU64,
    ret: AtomicU64,
}

fn token_of(ctx: &ProbeContext) -> &'static Token {
    ctx.data.downcast_ref::<Token>().expect("model token")
}

fn check_live(t: &Token, what: &str) {
    if !t.live.load(Ordering::SeqCst) {
        VIOLATIONS.fetch_add(1, Ordering::SeqCst);
        eprintln!("violation: {what} handler of an unregistered probe ran");
    }
}

fn m_pre(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let t = token_of(ctx);
    check_live(t, "pre");
    if regs.pc() != ctx.addr {
        VIOLATIONS.fetch_add(1, Ordering::SeqCst);
        eprintln!(
            "violation: pre-handler pc {:#x} != {:#x}",
            regs.pc(),
            ctx.addr
        );
    }
    t.pre.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn m_post(ctx: &ProbeContext, _: &mut dyn Registers) {
    let t = token_of(ctx);
    check_live(t, "post");
    t.post.fetch_add(1, Ordering::SeqCst);
}

fn m_entry(ctx: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) -> EntryAction {
    let t = token_of(ctx);
    check_live(t, "entry");
    t.entry.fetch_add(1, Ordering::SeqCst);
    EntryAction::Track
}

fn m_ret(ctx: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {
    let t = token_of(ctx);
    check_live(t, "return");
    t.ret.fetch_add(1, Ordering::SeqCst);
}

/// Where probes may go: every instruction boundary of these functions.
fn targets() -> Vec<usize> {
    let mut v = Vec::new();
    for (f, offs) in [
        (ARITH, ARITH_INSNS),
        (BRANCHY, BRANCHY_INSNS),
        (CALLER, CALLER_INSNS),
        (JUMPY, JUMPY_INSNS),
        (LDPC_FN, &[0, 4][..]),
        (MEM_FN, &[0, 4, 8, 0xc][..]),
        (RECUR, RECUR_INSNS),
        (NOPS, &[0, 2, 4, 6][..]),
        (CALLM_FN, &[0, 2, 6, 8][..]),
        (LOAD_FN, &[0][..]),
    ] {
        v.extend(offs.iter().map(|o| f + o));
    }
    v
}

/// Function entries for return probes.
const ENTRIES: [usize; 6] = [ARITH, BRANCHY, CALLER, JUMPY, RECUR, MEM_FN];

/// A function to call through memory (simulated `callm`).
const CALLM_FN: usize = 0x2000;
const CALLM_PTR: usize = 0x2100;

/// Calls a CPU may make: function, argument, result. `load_fn` of an
/// unmapped address faults (in a slot when probed) and resumes at the
/// kernel's fix-up, which returns 0xdead.
const CALLS: [(usize, u64, u64); 11] = [
    (LOAD_FN, 0x10, 0xdead_u16 as i16 as i64 as u64),
    (ARITH, 0, 13),
    (BRANCHY, 3, 100),
    (BRANCHY, 5, 200),
    (CALLER, 0, 14),
    (JUMPY, 0, 2),
    (LDPC_FN, 0, LDPC_VALUE),
    (MEM_FN, 0, 42),
    (RECUR, 2, 3),
    (NOPS, 9, 9),
    (CALLM_FN, CALLM_PTR as u64, 13),
];

#[derive(Debug, Clone)]
enum Op {
    /// Register a probe: target index, space (0 kernel, 1-2 user), kind
    /// (0 pre, 1 pre+post, 2 post, 3 return probe), enabled.
    Register(u8, u8, u8, bool),
    Unregister(u8),
    Enable(u8),
    Disable(u8),
    BatchRegister(Vec<(u8, u8, u8)>),
    BatchUnregister(u8),
    /// Step CPU `cpu` `n` times; an idle CPU first starts a call (call
    /// index, space).
    Step(u8, u8, u8, u8),
    /// A signal for the user task on `cpu`: 0 a handler calling a function
    /// (call index) runs now, 1 the step is aborted, 2 a probe is
    /// unregistered and another registered while the handler runs.
    Signal(u8, u8, u8),
    /// The user task on `cpu` exits.
    Exit(u8),
    /// Every task of user space 1 or 2 exits and the space is torn down.
    ReleaseSpace(u8),
    /// The user task of space 1 on CPU 0 forks.
    Fork,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 0u8..3, 0u8..4, any::<bool>()).prop_map(|(a, b, c, d)| Op::Register(a, b, c, d)),
        2 => any::<u8>().prop_map(Op::Unregister),
        1 => any::<u8>().prop_map(Op::Enable),
        1 => any::<u8>().prop_map(Op::Disable),
        1 => prop::collection::vec((any::<u8>(), 0u8..3, 0u8..4), 1..5).prop_map(Op::BatchRegister),
        1 => (1u8..4).prop_map(Op::BatchUnregister),
        12 => (0u8..2, 1u8..12, any::<u8>(), 0u8..3).prop_map(|(a, b, c, d)| Op::Step(a, b, c, d)),
        2 => (0u8..2, any::<u8>(), 0u8..3).prop_map(|(a, b, c)| Op::Signal(a, b, c)),
        1 => (0u8..2).prop_map(Op::Exit),
        1 => (1u8..3).prop_map(Op::ReleaseSpace),
        1 => Just(Op::Fork),
    ]
}

struct ModelProbe {
    id: ProbeId,
    token: &'static Token,
    space: Space,
    addr: usize,
    ret: bool,
    pre: bool,
    post: bool,
    enabled: bool,
    /// Hits the model counted.
    expected: u64,
    /// Post-handler runs the model counted.
    expected_post: u64,
    /// Post-handler runs it could not attribute exactly (steps a grace
    /// period finished in the middle of a registration call).
    post_slack: u64,
}

/// An out-of-line step in flight: the probed address, whether
/// post-handlers were due at the hit, and the generation of the point
/// (a point freed and created anew at the same address is another one).
type Stepping = (usize, bool, u64);

/// A CPU's current call.
struct Ctx {
    cpu: Cpu,
    want: u64,
    /// The probed address whose out-of-line step is in flight, and whether
    /// post-handlers were due when it was hit.
    stepping: Option<Stepping>,
}

type Cpus = Arc<Mutex<[Option<Ctx>; 2]>>;

type Completed = Arc<Mutex<Vec<(Space, usize, u64)>>>;

struct Model {
    fx: Fx,
    cpus: Cpus,
    /// Steps the grace period hook finished.
    completed: Completed,
    probes: Vec<ModelProbe>,
    originals: Vec<(usize, Vec<u8>)>,
    /// Point generations per address (see [`Stepping`]).
    gens: std::collections::HashMap<(Space, usize), u64>,
}

fn space_of(s: u8) -> Space {
    match s % 3 {
        0 => Space::Kernel,
        n => Space::User(n as usize),
    }
}

/// The task CPU `cpu` runs in `space` (each CPU has its own tasks).
fn task_of(cpu: usize, space: Space) -> usize {
    let s = match space {
        Space::Kernel => 0,
        Space::User(n) => n,
    };
    s + 3 * cpu
}

fn load_extra(fx: &Fx, space: Space) {
    fx.w.load(
        space,
        CALLM_FN,
        &cat(&[&push(14), &callm(1, 0), &pop(14), &ret()]),
    );
    fx.w.load(space, CALLM_PTR, &(ARITH as u64).to_le_bytes());
}

impl Model {
    fn new() -> Self {
        let fx: Fx = Fx::new();
        load_extra(&fx, Space::Kernel);
        for s in [1, 2] {
            fx.load_user(s);
            load_extra(&fx, Space::User(s));
            fx.w.set_task_space(s, s);
            fx.w.set_task_space(s + 3, s);
        }
        let originals = [(0x1000, 0xa40), (0x2000, 0x110), (NOPS, 0x202)]
            .iter()
            .map(|&(a, n)| (a, fx.w.peek(Space::Kernel, a, n)))
            .collect();
        let cpus: Cpus = Arc::new(Mutex::new([None, None]));
        let completed: Completed = Arc::new(Mutex::new(Vec::new()));
        // The grace period waits for CPUs inside a kernel slot (a real one
        // waits for them to be scheduled and leave; here they are stepped).
        let (hook_cpus, hook_done, w, e) = (cpus.clone(), completed.clone(), fx.w, fx.e);
        fx.w.on_synchronize(move || {
            let mut cpus = hook_cpus.lock().unwrap();
            for ctx in cpus.iter_mut().flatten() {
                let mut n = 0;
                while ctx.cpu.space == Space::Kernel && ctx.cpu.regs.pc as usize >= SLOT_AREA {
                    let pc = ctx.cpu.regs.pc as usize;
                    if w.peek(Space::Kernel, pc, 1)[0] == op::STEPEND {
                        if let Some((a, true, gen)) = ctx.stepping.take() {
                            hook_done.lock().unwrap().push((Space::Kernel, a, gen));
                        }
                    }
                    assert_eq!(ctx.cpu.step(w, e), None, "stepping out of a slot");
                    n += 1;
                    assert!(n < 100, "a CPU does not leave its slot");
                }
            }
            w.switch_to(ADMIN_CPU, 0);
        });
        Self {
            fx,
            cpus,
            completed,
            probes: Vec::new(),
            originals,
            gens: Default::default(),
        }
    }

    fn admin(&self) {
        self.fx.w.switch_to(ADMIN_CPU, 0);
    }

    fn register_spec(
        &mut self,
        target: u8,
        space: u8,
        kind: u8,
    ) -> Option<(ProbeSpec<'static>, ModelProbe)> {
        let space = space_of(space);
        let token: &'static Token = Box::leak(Box::default());
        token.live.store(true, Ordering::SeqCst);
        let ret = kind % 4 == 3;
        let addr = if ret {
            ENTRIES[target as usize % ENTRIES.len()]
        } else {
            let t = targets();
            t[target as usize % t.len()]
        };
        // One return probe per function and space keeps the pool from
        // running out (its misses would be legitimate, not the model's).
        if ret
            && self
                .probes
                .iter()
                .any(|p| p.ret && p.space == space && p.addr == addr)
        {
            return None;
        }
        let post = kind % 4 == 1 || kind % 4 == 2;
        let spec = if ret {
            ProbeSpec::Kretprobe(
                Kretprobe::at(addr)
                    .in_space(space)
                    .entry(m_entry)
                    .ret(m_ret)
                    .maxactive(POOL)
                    .data(token),
            )
        } else {
            let mut k = Kprobe::at(addr).in_space(space).data(token);
            if kind % 4 != 2 {
                k = k.pre(m_pre);
            }
            if post {
                k = k.post(m_post);
            }
            ProbeSpec::Kprobe(k)
        };
        let mp = ModelProbe {
            id: ProbeId::NONE,
            token,
            space,
            addr,
            ret,
            pre: kind % 4 != 2,
            post,
            enabled: true,
            expected: 0,
            expected_post: 0,
            post_slack: 0,
        };
        Some((spec, mp))
    }

    fn pick(&self, i: u8) -> Option<usize> {
        (!self.probes.is_empty()).then(|| i as usize % self.probes.len())
    }

    fn unregister_at(&mut self, i: usize) {
        self.admin();
        let p = self.probes.remove(i);
        self.fx.e.unregister(p.id).expect("unregister a live probe");
        p.token.live.store(false, Ordering::SeqCst);
        self.removed_at(p.space, p.addr);
    }

    fn apply(&mut self, op: &Op) {
        OPS_RUN.fetch_add(1, Ordering::Relaxed);
        match *op {
            Op::Register(t, s, k, enabled) => {
                let Some((spec, mut mp)) = self.register_spec(t, s, k) else {
                    return;
                };
                let spec = match spec {
                    ProbeSpec::Kprobe(k) if !enabled => ProbeSpec::Kprobe(k.disabled()),
                    ProbeSpec::Kretprobe(k) if !enabled => ProbeSpec::Kretprobe(k.disabled()),
                    s => s,
                };
                self.admin();
                let r = match spec {
                    ProbeSpec::Kprobe(k) => self.fx.e.register_kprobe(&k),
                    ProbeSpec::Kretprobe(k) => self.fx.e.register_kretprobe(&k),
                };
                match r {
                    Ok(id) => {
                        mp.id = id;
                        mp.enabled = enabled;
                        self.probes.push(mp);
                    }
                    Err(e) => {
                        mp.token.live.store(false, Ordering::SeqCst);
                        assert!(
                            matches!(e.kind(), ProbeErrorKind::CapacityFull(_)),
                            "unexpected registration error {e}"
                        );
                    }
                }
            }
            Op::Unregister(i) => {
                if let Some(i) = self.pick(i) {
                    self.unregister_at(i);
                }
            }
            Op::Enable(i) => {
                if let Some(i) = self.pick(i) {
                    self.admin();
                    self.fx.e.enable(self.probes[i].id).unwrap();
                    self.probes[i].enabled = true;
                }
            }
            Op::Disable(i) => {
                if let Some(i) = self.pick(i) {
                    self.admin();
                    self.fx.e.disable(self.probes[i].id).unwrap();
                    self.probes[i].enabled = false;
                }
            }
            Op::BatchRegister(ref list) => {
                let mut specs = Vec::new();
                let mut mps = Vec::new();
                for &(t, s, k) in list {
                    if let Some((spec, mp)) = self.register_spec(t, s, k) {
                        // no two return probes of one function in a batch
                        if mp.ret
                            && mps.iter().any(|m: &ModelProbe| {
                                m.ret && m.space == mp.space && m.addr == mp.addr
                            })
                        {
                            continue;
                        }
                        specs.push(spec);
                        mps.push(mp);
                    }
                }
                let mut ids = vec![ProbeId::NONE; specs.len()];
                self.admin();
                match self.fx.e.register_batch(&specs, &mut ids) {
                    Ok(()) => {
                        for (mut mp, id) in mps.into_iter().zip(ids) {
                            mp.id = id;
                            self.probes.push(mp);
                        }
                    }
                    Err(e) => {
                        assert_eq!(e.left_registered, 0);
                        assert!(
                            matches!(e.error.kind(), ProbeErrorKind::CapacityFull(_)),
                            "unexpected batch error {e}"
                        );
                        for mp in mps {
                            mp.token.live.store(false, Ordering::SeqCst);
                        }
                    }
                }
            }
            Op::BatchUnregister(n) => {
                let n = (n as usize).min(self.probes.len());
                let gone: Vec<ModelProbe> = self.probes.drain(..n).collect();
                let ids: Vec<ProbeId> = gone.iter().map(|p| p.id).collect();
                self.admin();
                self.fx.e.unregister_batch(&ids).unwrap();
                for p in gone {
                    p.token.live.store(false, Ordering::SeqCst);
                    self.removed_at(p.space, p.addr);
                }
            }
            Op::Step(cpu, n, call, space) => self.step(cpu as usize, n, call, space),
            Op::Signal(cpu, call, how) => self.signal(cpu as usize, call, how),
            Op::Exit(cpu) => {
                let mut cpus = self.cpus.lock().unwrap();
                let Some(ctx) = cpus[cpu as usize].take_if(|c| c.cpu.space != Space::Kernel) else {
                    return;
                };
                drop(cpus);
                // the CPU runs nothing of the dead task any more
                self.fx.w.cpu_pcs.lock().unwrap().remove(&(cpu as usize));
                // the task's context is gone: it never runs again
                self.fx
                    .e
                    .release_task(&self.fx.w.tasks[ctx.cpu.task])
                    .unwrap();
            }
            Op::ReleaseSpace(s) => {
                let space = Space::User(s as usize);
                let mut cpus = self.cpus.lock().unwrap();
                for (i, c) in cpus.iter_mut().enumerate() {
                    if c.take_if(|c| c.cpu.space == space).is_some() {
                        self.fx.w.cpu_pcs.lock().unwrap().remove(&i);
                    }
                }
                drop(cpus);
                for cpu in 0..2 {
                    // every task of the space exited
                    self.fx
                        .e
                        .release_task(&self.fx.w.tasks[task_of(cpu, space)])
                        .unwrap();
                }
                self.admin();
                self.fx.e.release_space(s as usize).unwrap();
                self.probes.retain(|p| {
                    let keep = p.space != space;
                    if !keep {
                        p.token.live.store(false, Ordering::SeqCst);
                    }
                    keep
                });
                for (k, g) in self.gens.iter_mut() {
                    if k.0 == space {
                        *g += 1;
                    }
                }
                for addr in targets().into_iter().chain(ENTRIES) {
                    self.gens.entry((space, addr)).or_insert(1);
                }
                // A new process gets the same id and fresh memory.
                self.fx.load_user(s as usize);
                load_extra(&self.fx, space);
            }
            Op::Fork => self.fork(),
        }
    }

    /// Count what the next step of a context at `pc` in `space` does: a
    /// hit on every enabled probe there (and the post-handlers of a
    /// simulated instruction), or the post-handlers of the step in flight
    /// when it executes its step-end marker.
    fn account(&mut self, space: Space, pc: usize, stepping: &mut Option<Stepping>) {
        let armed = self
            .probes
            .iter()
            .any(|p| p.enabled && p.space == space && p.addr == pc);
        if armed {
            for p in &mut self.probes {
                if p.enabled && p.space == space && p.addr == pc {
                    p.expected += 1;
                }
            }
            // Post-handlers are due when an enabled probe there has one
            // at the hit; they run for the ones enabled when the step ends.
            let due = self
                .probes
                .iter()
                .any(|p| p.enabled && p.post && p.space == space && p.addr == pc);
            let op = self.original_byte(pc);
            match custom_arch::arch::decision(op).map(|d| d.class) {
                Some(custom_arch::arch::Class::Simulate) if due => self.count_post(space, pc),
                Some(custom_arch::arch::Class::Simulate) => {}
                _ => *stepping = Some((pc, due, self.point_gen(space, pc))),
            }
        } else if pc >= SLOT_AREA {
            if self.fx.w.peek(space, pc, 1)[0] == op::STEPEND {
                if let Some((a, due, gen)) = stepping.take() {
                    if due && gen == self.point_gen(space, a) {
                        self.count_post(space, a);
                    }
                }
            }
        } else {
            *stepping = None;
        }
    }

    /// The generation of the point at `addr` in `space`.
    fn point_gen(&self, space: Space, addr: usize) -> u64 {
        self.gens.get(&(space, addr)).copied().unwrap_or(0)
    }

    /// Probes at `addr` were removed: when none is left, the engine freed
    /// the point (a later one there is a new point).
    fn removed_at(&mut self, space: Space, addr: usize) {
        if !self
            .probes
            .iter()
            .any(|p| p.space == space && p.addr == addr)
        {
            *self.gens.entry((space, addr)).or_default() += 1;
        }
    }

    fn count_post(&mut self, space: Space, addr: usize) {
        for p in &mut self.probes {
            if p.enabled && p.post && p.space == space && p.addr == addr {
                p.expected_post += 1;
            }
        }
    }

    fn original_byte(&self, addr: usize) -> u8 {
        for (base, orig) in &self.originals {
            if addr >= *base && addr < base + orig.len() {
                return orig[addr - base];
            }
        }
        panic!("no original byte at {addr:#x}");
    }

    /// Steps the grace-period hook finished: their post-handler runs are
    /// allowed but not counted exactly.
    fn settle_completed(&mut self) {
        let done: Vec<(Space, usize, u64)> = self.completed.lock().unwrap().drain(..).collect();
        for (space, a, gen) in done {
            if gen != self.point_gen(space, a) {
                continue;
            }
            for p in &mut self.probes {
                if p.post && p.space == space && p.addr == a {
                    p.post_slack += 1;
                }
            }
        }
    }

    fn step(&mut self, cpu: usize, n: u8, call: u8, space: u8) {
        let (w, e) = (self.fx.w, self.fx.e);
        for _ in 0..n {
            let mut cpus = self.cpus.lock().unwrap();
            if cpus[cpu].is_none() {
                let (func, arg, want) = CALLS[call as usize % CALLS.len()];
                let space = space_of(space);
                let task = task_of(cpu, space);
                // a stub per CPU and task: call func; halt
                let stub = STUBS + cpu * 0x10 + task * 0x100;
                let rel = (func as i64 - stub as i64) as i16;
                w.load(space, stub, &cat(&[&call_rel(rel), &halt()]));
                let mut c = Cpu::new(cpu, task, space, stub, 0xf000 - task * 0x400);
                c.regs.r[1] = arg;
                cpus[cpu] = Some(Ctx {
                    cpu: c,
                    want,
                    stepping: None,
                });
            }
            let ctx = cpus[cpu].as_mut().unwrap();
            let (space, pc) = (ctx.cpu.space, ctx.cpu.regs.pc as usize);
            let mut stepping = ctx.stepping;
            drop(cpus);
            self.account(space, pc, &mut stepping);
            let mut cpus = self.cpus.lock().unwrap();
            let ctx = cpus[cpu].as_mut().unwrap();
            ctx.stepping = stepping;
            match ctx.cpu.step(w, e) {
                None => {}
                Some(Stop::Halted) => {
                    assert_eq!(ctx.cpu.regs.r[1], ctx.want, "call result on CPU {cpu}");
                    cpus[cpu] = None;
                    return;
                }
                Some(stop) => panic!("CPU {cpu} stopped: {stop:?} at {:#x}", ctx.cpu.regs.pc),
            }
        }
    }

    fn signal(&mut self, cpu: usize, call: u8, how: u8) {
        let (w, e) = (self.fx.w, self.fx.e);
        let mut cpus = self.cpus.lock().unwrap();
        let Some(ctx) = cpus[cpu].as_mut() else {
            return;
        };
        let pc = ctx.cpu.regs.pc as usize;
        // Only a task stopped in a step slot (not on its return trampoline,
        // which lives in a slot page too).
        if ctx.cpu.space == Space::Kernel
            || pc < SLOT_AREA
            || !e.should_defer_signal(&w.tasks[ctx.cpu.task])
        {
            return;
        }
        let (space, task) = (ctx.cpu.space, ctx.cpu.task);
        #[allow(clippy::single_match)]
        match how % 3 {
            1 => {
                w.switch_to(cpu, task);
                let at_end = w.peek(space, pc, 1)[0] == op::STEPEND;
                let stepping = ctx.stepping.take();
                // SAFETY: the task's own frame, one simulated CPU.
                assert!(unsafe { e.abort_user_step(&mut ctx.cpu.regs) });
                let now = ctx.cpu.regs.pc as usize;
                w.cpu_pcs.lock().unwrap().insert(cpu, (space, now));
                drop(cpus);
                if at_end {
                    // The copy had run: the step was completed instead.
                    if let Some((a, true, gen)) = stepping {
                        if gen == self.point_gen(space, a) {
                            self.count_post(space, a);
                        }
                    }
                }
                return;
            }
            _ => {}
        }
        // The handler runs on the same CPU and task, below the stack.
        let saved = ctx.cpu.regs;
        // The slot the step runs in (slots are 8-byte aligned, 8 long).
        let slot = pc & !7;
        let slot_bytes = w.peek(space, slot, 8);
        let (func, arg, want) = CALLS[call as usize % CALLS.len()];
        let stub = STUBS + 0x800 + cpu * 0x10;
        let rel = (func as i64 - stub as i64) as i16;
        w.load(space, stub, &cat(&[&call_rel(rel), &halt()]));
        let mut h = Cpu::new(cpu, task, space, stub, saved.r[SP] as usize - 0x200);
        h.regs.r[1] = arg;
        drop(cpus);
        let mut h_stepping = None;
        loop {
            let hp = h.regs.pc as usize;
            self.account(space, hp, &mut h_stepping);
            match h.step(w, e) {
                None => {}
                Some(Stop::Halted) => break,
                Some(stop) => panic!("signal handler stopped: {stop:?}"),
            }
        }
        assert_eq!(h.regs.r[1], want, "signal handler's call result");
        if how % 3 == 2 {
            // While the handler runs: the probe the task is stepping goes,
            // another comes (it may want a slot).
            if let Some(i) = self.probes.iter().position(|p| p.space == space && !p.ret) {
                self.unregister_at(i);
            }
            self.apply(&Op::Register(call, space_index(space), 0, true));
        }
        assert_eq!(
            w.peek(space, slot, 8),
            slot_bytes,
            "the slot the interrupted step returns to changed"
        );
        assert!(e.in_slot(space, pc));
        let mut cpus = self.cpus.lock().unwrap();
        if let Some(ctx) = cpus[cpu].as_mut() {
            ctx.cpu.regs = saved; // sigreturn
        }
    }

    fn fork(&mut self) {
        let (w, e) = (self.fx.w, self.fx.e);
        let parent = task_of(0, Space::User(1));
        let child_task = TASKS - 1;
        w.clone_space(Space::User(1), Space::User(7));
        self.admin();
        let user_pending = e.pending_returns(&w.tasks[parent]);
        // the model runs one context at a time; neither task runs
        match e.fork_space(1, 7, &w.tasks[parent], &w.tasks[child_task]) {
            Ok(()) => assert!(e.pending_returns(&w.tasks[child_task]) <= user_pending),
            Err(err) => {
                assert_eq!(
                    err.kind(),
                    ProbeErrorKind::CapacityFull(probe_hal::Capacity::Instances)
                );
                assert_eq!(e.pending_returns(&w.tasks[child_task]), 0);
            }
        }
        for (addr, orig) in &self.originals {
            assert_eq!(
                &w.peek(Space::User(7), *addr, orig.len()),
                orig,
                "the child has its original bytes"
            );
        }
        // the child never ran
        e.release_task(&w.tasks[child_task]).unwrap();
        e.release_space(7).unwrap();
    }

    /// Every invariant, after every operation.
    fn check(&self) {
        let (w, e) = (self.fx.w, self.fx.e);
        assert_eq!(VIOLATIONS.load(Ordering::SeqCst), 0, "handler violations");
        for space in [Space::Kernel, Space::User(1), Space::User(2)] {
            let armed: Vec<usize> = self
                .probes
                .iter()
                .filter(|p| p.space == space && p.enabled)
                .map(|p| p.addr)
                .collect();
            for (base, orig) in &self.originals {
                let now = w.peek(space, *base, orig.len());
                for (i, (&b, &o)) in now.iter().zip(orig.iter()).enumerate() {
                    let a = base + i;
                    if armed.contains(&a) {
                        assert_eq!(b, op::BRK, "{space:?} {a:#x}: breakpoint expected");
                    } else if !armed.contains(&(a - 1)) {
                        assert_eq!(b, o, "{space:?} {a:#x}: original byte expected");
                    }
                }
            }
        }
        for p in &self.probes {
            let info = e.info(p.id).expect("model probe registered");
            assert_eq!(info.enabled, p.enabled);
            assert_eq!(
                (info.hits, info.missed),
                (p.expected, 0),
                "hits of the probe at {:?} {:#x} (ret {})",
                p.space,
                p.addr,
                p.ret
            );
            if p.ret {
                assert_eq!(p.token.entry.load(Ordering::SeqCst), p.expected);
                assert!(p.token.ret.load(Ordering::SeqCst) <= p.expected);
            } else {
                if p.pre {
                    assert_eq!(p.token.pre.load(Ordering::SeqCst), p.expected);
                }
                let post = p.token.post.load(Ordering::SeqCst);
                assert!(
                    post >= p.expected_post && post <= p.expected_post + p.post_slack,
                    "post-handler of the probe at {:?} {:#x}: {post} runs, model {} (+{})",
                    p.space,
                    p.addr,
                    p.expected_post,
                    p.post_slack
                );
            }
        }
        let pending: usize = (0..TASKS).map(|t| e.pending_returns(&w.tasks[t])).sum();
        assert_eq!(e.free_instances() + pending, POOL, "instances conserved");
        assert_eq!(e.leaked_steps(), 0);
    }

    /// Finish every call, remove every probe: all back to the start.
    fn finish(&mut self) {
        for cpu in 0..2 {
            let mut n = 0;
            while self.cpus.lock().unwrap()[cpu].is_some() {
                self.step(cpu, 1, 0, 0);
                n += 1;
                assert!(n < 100_000, "CPU {cpu} does not finish its call");
            }
        }
        let ids: Vec<ProbeId> = self.probes.iter().map(|p| p.id).collect();
        self.admin();
        self.fx.e.unregister_batch(&ids).unwrap();
        for p in self.probes.drain(..) {
            p.token.live.store(false, Ordering::SeqCst);
        }
        self.fx.e.unregister_batch(&[]).unwrap(); // reaps zombie points
        self.settle_completed();
        self.check();
        assert_eq!(self.fx.e.free_instances(), POOL);
        assert_eq!(self.fx.e.slot_usage().0, self.user_trampolines());
    }

    /// Slots still held by user-space return trampolines (they live as
    /// long as their address space).
    fn user_trampolines(&self) -> usize {
        [1, 2]
            .iter()
            .filter(|&&s| {
                self.fx
                    .w
                    .count(|e| matches!(e, custom_arch::world::Event::PageAlloc(Space::User(x), _) if *x == s))
                    > self
                        .fx
                        .w
                        .count(|e| matches!(e, custom_arch::world::Event::PageFree(Space::User(x), _) if *x == s))
            })
            .count()
    }
}

impl Drop for Model {
    /// Give the leaked world and engine back: the soak runs a hundred
    /// thousand sequences and would otherwise hold every one's memory.
    fn drop(&mut self) {
        let (w, e) = (self.fx.w, self.fx.e);
        w.clear_sync_hook();
        // SAFETY: both were leaked from a `Box` by `Fx::new` for this model
        // alone; the sequence is over, nothing runs on them any more, and
        // the only other references (the grace-period hook, the CPU
        // contexts) are dropped with the world or with this model.
        unsafe {
            drop(Box::from_raw(
                e as *const custom_arch::ToyEngine as *mut custom_arch::ToyEngine,
            ));
            drop(Box::from_raw(
                w as *const custom_arch::world::World as *mut custom_arch::world::World,
            ));
        }
    }
}

fn space_index(space: Space) -> u8 {
    match space {
        Space::Kernel => 0,
        Space::User(n) => n as u8,
    }
}

/// `call rel` (the asm helper under another name: `call` is a method
/// name in the fixture).
fn call_rel(rel: i16) -> [u8; 4] {
    call(rel)
}

fn run_sequence(ops: &[Op]) {
    let mut m = Model::new();
    for op in ops {
        m.apply(op);
        m.settle_completed();
        m.check();
    }
    m.finish();
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_sequences_keep_every_invariant() {
    let cases = env_or("MODEL_CASES", 64);
    let ops = env_or("MODEL_OPS", 120) as usize;
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(seq in prop::collection::vec(op_strategy(), 1..ops))| {
        run_sequence(&seq);
    });
    println!(
        "model: {} operations in {cases} sequences, {} violations",
        OPS_RUN.load(Ordering::Relaxed),
        VIOLATIONS.load(Ordering::SeqCst)
    );
}

#[test]
fn regression_post_count() {
    use Op::*;
    run_sequence(&[
        BatchUnregister(1),
        Register(0, 2, 0, false),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        ReleaseSpace(2),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        BatchUnregister(1),
        BatchUnregister(1),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        Unregister(0),
        Unregister(0),
        BatchRegister(vec![(212, 2, 0)]),
        BatchUnregister(1),
        Unregister(81),
        Register(31, 0, 0, false),
        Register(0, 0, 0, false),
        BatchUnregister(1),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        Step(0, 7, 4, 0),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        Register(0, 0, 0, false),
        Step(0, 6, 237, 2),
        Register(15, 0, 0, false),
        Step(0, 11, 0, 0),
        Register(0, 0, 0, false),
        Signal(0, 0, 1),
        BatchUnregister(1),
    ]);
}
