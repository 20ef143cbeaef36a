//! Handler objects attached to live probes (perf-style attach, replace,
//! detach, drop), their order, their grace periods, and their errors.
//! The threaded test is part of the Miri subset: a handler reached after its
//! detach returned would be a use after free there.

mod common;

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::*;
use custom_arch::world::Event;
use probe_core::{
    Attachment, Kprobe, Kretprobe, PreAction, ProbeContext, ProbeErrorKind, ProbeHandler,
    ProbeKind, Space,
};
use probe_hal::Registers;

/// A program: counts its calls, records what it saw, may change r1 or the
/// return value, and checks that its memory is still alive on every call.
struct Program {
    name: &'static str,
    alive: AtomicU64,
    hits: AtomicUsize,
    returns: AtomicUsize,
    /// `ctx.kind` at the last hit (0: none, 1: kprobe, 2: kretprobe).
    hit_kind: AtomicUsize,
    add_to_r1: u64,
    skip_to: Option<usize>,
    set_return: Option<u64>,
    log: Option<&'static Mutex<Vec<(&'static str, usize)>>>,
    /// Spin this long inside the handler, between two canary checks (a
    /// detach that did not wait would free the program meanwhile).
    dwell: u32,
}

const ALIVE: u64 = 0x0a11_ce00_d00d_f00d;
const DEAD: u64 = 0xdead_dead_dead_dead;

impl Program {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            alive: AtomicU64::new(ALIVE),
            hits: AtomicUsize::new(0),
            returns: AtomicUsize::new(0),
            hit_kind: AtomicUsize::new(0),
            add_to_r1: 0,
            skip_to: None,
            set_return: None,
            log: None,
            dwell: 0,
        }
    }
    fn add_to_r1(mut self, v: u64) -> Self {
        self.add_to_r1 = v;
        self
    }
    fn skip_to(mut self, pc: usize) -> Self {
        self.skip_to = Some(pc);
        self
    }
    fn set_return(mut self, v: u64) -> Self {
        self.set_return = Some(v);
        self
    }
    fn log(mut self, log: &'static Mutex<Vec<(&'static str, usize)>>) -> Self {
        self.log = Some(log);
        self
    }
    fn dwell(mut self, n: u32) -> Self {
        self.dwell = n;
        self
    }
    fn check_alive(&self) {
        assert_eq!(
            self.alive.load(Ordering::SeqCst),
            ALIVE,
            "{}: handler ran after its memory was given back",
            self.name
        );
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.alive.store(DEAD, Ordering::SeqCst);
    }
}

impl ProbeHandler for Program {
    fn on_hit(&self, ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
        self.check_alive();
        self.hits.fetch_add(1, Ordering::SeqCst);
        let kind = 1 + usize::from(ctx.kind == ProbeKind::Kretprobe);
        self.hit_kind.store(kind, Ordering::SeqCst);
        for _ in 0..self.dwell {
            std::hint::spin_loop();
        }
        self.check_alive();
        assert_eq!(regs.pc(), ctx.addr, "handlers see the probed pc");
        if let Some(log) = self.log {
            log.lock().unwrap().push((self.name, ctx.addr));
        }
        if self.add_to_r1 != 0 {
            let r1 = regs.gpr(1);
            regs.set_gpr(1, r1.wrapping_add(self.add_to_r1 as usize));
        }
        match self.skip_to {
            Some(pc) => {
                regs.set_pc(pc);
                PreAction::SkipInstruction
            }
            None => PreAction::Continue,
        }
    }

    fn on_return(&self, ctx: &ProbeContext, regs: &mut dyn Registers) {
        self.check_alive();
        self.returns.fetch_add(1, Ordering::SeqCst);
        for _ in 0..self.dwell {
            std::hint::spin_loop();
        }
        self.check_alive();
        assert_ne!(ctx.return_address, 0);
        assert_eq!(ctx.kind, ProbeKind::Kretprobe);
        if let Some(v) = self.set_return {
            regs.set_return_value(v as usize);
        }
    }
}

fn grace_periods(fx: &Fx) -> usize {
    fx.w.count(|e| *e == Event::GracePeriod)
}

#[test]
fn an_attached_program_runs_on_every_hit_until_detached() {
    let fx: Fx = Fx::new();
    let own = seen();
    // BRANCHY(3) = 100, else 200: the probe at its entry sees r1.
    let id =
        fx.e.register_kprobe(&Kprobe::at(BRANCHY).pre(pre_count).data(own))
            .unwrap();
    // 2 -> 3: the branch goes the other way
    let att = pin!(Attachment::new(Program::new("p").add_to_r1(1)));
    assert_eq!(fx.call(BRANCHY, &[2]).r[1], 200, "nothing attached yet");
    fx.e.attach(id, att.as_ref()).unwrap();
    assert_eq!(att.probe(), Some(id));
    assert_eq!(fx.e.info(id).unwrap().attached, 1);
    assert_eq!(fx.call(BRANCHY, &[2]).r[1], 100, "the program changed r1");
    assert_eq!(
        att.handler().hit_kind.load(Ordering::SeqCst),
        1,
        "a kprobe hit"
    );
    assert_eq!(att.handler().hits.load(Ordering::SeqCst), 1);
    assert_eq!(hits(own), 2, "the probe's own handler runs as before");

    let before = grace_periods(&fx);
    fx.e.detach(att.as_ref()).unwrap();
    assert!(
        grace_periods(&fx) > before,
        "detach waits for a grace period"
    );
    assert!(!att.is_attached());
    assert_eq!(fx.e.info(id).unwrap().attached, 0);
    assert_eq!(fx.call(BRANCHY, &[2]).r[1], 200);
    assert_eq!(att.handler().hits.load(Ordering::SeqCst), 1);
    // Reusable after the detach, on another probe.
    let id2 = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    fx.e.attach(id2, att.as_ref()).unwrap();
    fx.call(ARITH, &[]);
    assert_eq!(att.handler().hits.load(Ordering::SeqCst), 2);
}

#[test]
fn several_programs_run_in_attach_order_and_replace_swaps_one_in_place() {
    let fx: Fx = Fx::new();
    static LOG: Mutex<Vec<(&str, usize)>> = Mutex::new(Vec::new());
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH + 8)).unwrap();
    let prog = |name| Program::new(name).log(&LOG);
    let a = pin!(Attachment::new(prog("a")));
    let b = pin!(Attachment::new(prog("b")));
    let c = pin!(Attachment::new(prog("c")));
    let d = pin!(Attachment::new(prog("d")));
    for att in [a.as_ref(), b.as_ref(), c.as_ref()] {
        fx.e.attach(id, att).unwrap();
    }
    fx.call(ARITH, &[]);
    fx.e.replace(b.as_ref(), d.as_ref()).unwrap();
    assert!(!b.is_attached() && d.is_attached());
    fx.call(ARITH, &[]);
    let names: Vec<_> = LOG.lock().unwrap().iter().map(|l| l.0).collect();
    assert_eq!(names, ["a", "b", "c", "a", "d", "c"]);
    assert_eq!(fx.e.info(id).unwrap().attached, 3);
}

#[test]
fn a_program_on_a_return_probe_sees_entry_and_return_and_can_change_the_result() {
    let fx: Fx = Fx::new();
    let id = fx.e.register_kretprobe(&Kretprobe::at(CALLER)).unwrap();
    let att = pin!(Attachment::new(Program::new("r").set_return(99)));
    fx.e.attach(id, att.as_ref()).unwrap();
    assert_eq!(fx.call(CALLER, &[]).r[1], 99);
    let p = att.handler();
    assert_eq!(p.hits.load(Ordering::SeqCst), 1, "entry");
    assert_eq!(
        p.hit_kind.load(Ordering::SeqCst),
        2,
        "the entry of a kretprobe"
    );
    assert_eq!(p.returns.load(Ordering::SeqCst), 1, "return");
}

#[test]
fn a_program_may_skip_the_instruction() {
    let fx: Fx = Fx::new();
    // Skip BRANCHY entirely: jump to ARITH's code instead (returns 13).
    let id = fx.e.register_kprobe(&Kprobe::at(BRANCHY)).unwrap();
    let first = pin!(Attachment::new(Program::new("skip").skip_to(ARITH)));
    let second = pin!(Attachment::new(Program::new("after")));
    fx.e.attach(id, first.as_ref()).unwrap();
    fx.e.attach(id, second.as_ref()).unwrap();
    assert_eq!(fx.call(BRANCHY, &[3]).r[1], 13);
    assert_eq!(
        second.handler().hits.load(Ordering::SeqCst),
        0,
        "programs after a skip do not run"
    );
}

#[test]
fn dropping_an_attached_program_detaches_it_after_a_grace_period() {
    let fx: Fx = Fx::new();
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    let att = Box::pin(Attachment::new(Program::new("boxed")));
    fx.e.attach(id, att.as_ref()).unwrap();
    fx.call(ARITH, &[]);
    let before = grace_periods(&fx);
    drop(att);
    assert!(grace_periods(&fx) > before);
    assert_eq!(fx.e.info(id).unwrap().attached, 0);
    fx.call(ARITH, &[]); // would read freed memory if still linked
}

#[test]
fn unregistering_a_probe_detaches_its_programs() {
    let fx: Fx = Fx::new();
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    let att = Box::pin(Attachment::new(Program::new("orphan")));
    fx.e.attach(id, att.as_ref()).unwrap();
    fx.e.unregister(id).unwrap();
    assert!(!att.is_attached());
    let before = grace_periods(&fx);
    drop(att);
    assert_eq!(grace_periods(&fx), before, "nothing left to wait for");
    // The record is reused by a new probe with no programs.
    let id2 = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    assert_eq!(fx.e.info(id2).unwrap().attached, 0);
}

#[test]
fn bad_attach_and_detach_requests_are_refused_and_change_nothing() {
    let fx: Fx = Fx::new();
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    let other = fx.e.register_kprobe(&Kprobe::at(BRANCHY)).unwrap();
    let att = pin!(Attachment::new(Program::new("x")));
    let loose = pin!(Attachment::new(Program::new("loose")));
    // Detach or replace something not attached.
    let kind = |r: Result<(), probe_core::ProbeError>| r.unwrap_err().kind();
    assert!(matches!(
        kind(fx.e.detach(loose.as_ref())),
        ProbeErrorKind::InvalidRequest(_)
    ));
    assert!(matches!(
        kind(fx.e.replace(loose.as_ref(), att.as_ref())),
        ProbeErrorKind::InvalidRequest(_)
    ));
    fx.e.attach(id, att.as_ref()).unwrap();
    // Attach twice, here or on another probe.
    assert!(matches!(
        kind(fx.e.attach(id, att.as_ref())),
        ProbeErrorKind::InvalidRequest(_)
    ));
    assert!(matches!(
        kind(fx.e.attach(other, att.as_ref())),
        ProbeErrorKind::InvalidRequest(_)
    ));
    // Replace by something attached.
    fx.e.attach(other, loose.as_ref()).unwrap();
    assert!(matches!(
        kind(fx.e.replace(att.as_ref(), loose.as_ref())),
        ProbeErrorKind::InvalidRequest(_)
    ));
    // A stale id.
    let stale = fx.e.register_kprobe(&Kprobe::at(JUMPY)).unwrap();
    fx.e.unregister(stale).unwrap();
    let fresh = pin!(Attachment::new(Program::new("fresh")));
    assert_eq!(
        kind(fx.e.attach(stale, fresh.as_ref())),
        ProbeErrorKind::NoSuchProbe
    );
    assert!(!fresh.is_attached());
    assert_eq!(att.probe(), Some(id));
    assert_eq!(loose.probe(), Some(other));
    assert_eq!(fx.e.info(id).unwrap().attached, 1);
    assert_eq!(fx.e.info(other).unwrap().attached, 1);
}

/// A program that tries to attach, detach and register from its handler.
struct Reentrant {
    target: &'static Attachment<'static, Program>,
    results: Mutex<Vec<Option<ProbeErrorKind>>>,
    engine: &'static custom_arch::ToyEngine,
}

impl ProbeHandler for Reentrant {
    fn on_hit(&self, ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
        let t = Pin::static_ref(self.target);
        let mut r = self.results.lock().unwrap();
        r.push(self.engine.attach(ctx.id, t).err().map(|e| e.kind()));
        r.push(self.engine.detach(t).err().map(|e| e.kind()));
        r.push(
            self.engine
                .register_kprobe(&Kprobe::at(JUMPY))
                .err()
                .map(|e| e.kind()),
        );
        PreAction::Continue
    }
}

#[test]
fn attaching_or_detaching_from_a_handler_is_an_error() {
    let fx: Fx = Fx::new();
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
    let target: &'static Attachment<'static, Program> =
        Box::leak(Box::new(Attachment::new(Program::new("t"))));
    let re: &'static Attachment<'static, Reentrant> =
        Box::leak(Box::new(Attachment::new(Reentrant {
            target,
            results: Mutex::new(Vec::new()),
            engine: fx.e,
        })));
    fx.e.attach(id, Pin::static_ref(re)).unwrap();
    fx.call(ARITH, &[]);
    assert_eq!(
        *re.handler().results.lock().unwrap(),
        [Some(ProbeErrorKind::InTrapContext); 3]
    );
    assert!(!target.is_attached());
    assert_eq!(fx.e.list::<8>().len(), 1);
}

/// CPU threads hit a kprobe and a return probe while the main thread
/// attaches, replaces, detaches and drops programs on both, 1,000 rounds: a
/// program that always stays attached counts every hit exactly, and no
/// handler ever runs on memory given back (each checks its own canary, and
/// Miri checks the accesses themselves).
#[test]
fn real_threads_hit_while_programs_come_and_go() {
    #[cfg(miri)]
    const SIZES: (usize, usize, usize) = (2, 2, 3);
    #[cfg(not(miri))]
    const SIZES: (usize, usize, usize) = (2, 2000, 1000);
    const DWELL: u32 = if cfg!(miri) { 10 } else { 20_000 };
    let (threads, calls, rounds) = SIZES;
    let fx: Fx<8> = Fx::new();
    let (w, e) = (fx.w, fx.e);
    w.per_thread_cpu(3, 7);
    let q = Quiescence::install(w, threads);
    let kp = e
        .register_kprobe(&Kprobe::at(ARITH + ARITH_INSNS[2]))
        .unwrap();
    let rp = e.register_kretprobe(&Kretprobe::at(CALLER)).unwrap();
    let steady: &'static Attachment<'static, Program> =
        Box::leak(Box::new(Attachment::new(Program::new("steady"))));
    e.attach(kp, Pin::static_ref(steady)).unwrap();

    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let q = q.clone();
            let start = fx.cpu_calling(k, k, Space::Kernel, CALLER, &[]);
            std::thread::spawn(move || {
                w.per_thread_cpu(k, k);
                q.run_calls(k, (w, e), &start, calls, 14);
                w.shared_cpu();
            })
        })
        .collect();

    for round in 0..rounds {
        let probe = if round % 2 == 0 { kp } else { rp };
        let a = Box::pin(Attachment::new(Program::new("a").dwell(DWELL)));
        let b = Box::pin(Attachment::new(Program::new("b").dwell(DWELL)));
        e.attach(probe, a.as_ref()).unwrap();
        match round % 3 {
            0 => {
                e.replace(a.as_ref(), b.as_ref()).unwrap();
                drop(a); // detached by the replace: nothing to wait for
                drop(b); // attached: detaches and waits
            }
            1 => {
                e.attach(probe, b.as_ref()).unwrap();
                e.detach(a.as_ref()).unwrap();
                drop(a);
                drop(b);
            }
            _ => drop(a),
        }
    }

    for t in workers {
        t.join().unwrap();
    }
    w.clear_sync_hook();
    w.shared_cpu();
    assert_eq!(
        steady.handler().hits.load(Ordering::SeqCst),
        threads * calls,
        "the program attached throughout saw every hit"
    );
    assert_eq!(e.info(kp).unwrap().attached, 1);
    assert_eq!(e.info(rp).unwrap().attached, 0);
}
