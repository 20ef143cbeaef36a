//! The tracer's checks: uprobes and uretprobes in two child processes.

use core::sync::atomic::{AtomicI32, Ordering};

use probe_core::{Kprobe, Kretprobe, PreAction, ProbeContext, ProbeId, Registers, Space};
use probe_hal::Handling;
use probe_hal_x86_64::gpr::{RAX, RDI, RSP};
use probe_hal_x86_64::X86_64;
use x86_64_linux::call::call_named as call_own;
use x86_64_linux::recorder::{
    entry_record, post_record, pre_record, ret_record, Recorder, ENTRY, INSTANCE, RETURN,
};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use crate::child::{Child, Command, FINISH, HANDLER_RESULT, STOP_AFTER};
use crate::ptrace::{self, Status};
use crate::trace::{
    call_named, run_until_stop, set_signal_policy, signal_after_next_copy, signal_record,
    SignalPolicy,
};
use crate::{services, ENGINE};

type CheckResult = Result<String, String>;

const DATA0: u64 = 0x1122_3344_5566_7788;

/// The two children every check works with.
pub struct Children {
    a: Option<Child>,
    b: Option<Child>,
}

impl Children {
    fn a(&self) -> Result<&Child, String> {
        self.a.as_ref().ok_or_else(|| "child A is gone".to_string())
    }
    fn b(&self) -> Result<&Child, String> {
        self.b.as_ref().ok_or_else(|| "child B is gone".to_string())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in [self.a.take(), self.b.take()].into_iter().flatten() {
            // SAFETY: killing our own child process.
            unsafe { libc::kill(c.pid, libc::SIGKILL) };
            let _ = ptrace::wait(c.pid);
        }
    }
}

fn space(c: &Child) -> Space {
    Space::User(c.pid as usize)
}

fn uprobe(c: &Child, point: &str, rec: &'static Recorder, post: bool) -> Kprobe<'static> {
    let k = Kprobe::at(testfns::point(point).addr())
        .in_space(space(c))
        .pre(pre_record)
        .data(rec);
    if post {
        k.post(post_record)
    } else {
        k
    }
}

pub(crate) fn peek(c: &Child, addr: usize, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    ensure!(
        c.mem.read(addr, &mut buf),
        "reading child {} at {addr:#x}",
        c.pid
    );
    Ok(buf)
}

pub(crate) fn own(addr: usize, len: usize) -> Vec<u8> {
    // SAFETY: addresses of this process's own test functions (readable text).
    unsafe { testfns::code_bytes(addr, len) }
}

/// Probes a check registered: unregistered when dropped, so a failing
/// check leaves nothing armed in the children.
#[derive(Default)]
struct Probes(Vec<ProbeId>);

impl Probes {
    fn kprobe(&mut self, k: &Kprobe<'_>) -> Result<ProbeId, String> {
        let id = ENGINE.register_kprobe(k).map_err(|e| e.to_string())?;
        self.0.push(id);
        Ok(id)
    }

    fn kretprobe(&mut self, k: &Kretprobe<'_>) -> Result<ProbeId, String> {
        let id = ENGINE.register_kretprobe(k).map_err(|e| e.to_string())?;
        self.0.push(id);
        Ok(id)
    }

    fn clear(&mut self) -> Result<(), String> {
        let ids = std::mem::take(&mut self.0);
        ENGINE.unregister_batch(&ids).map_err(|e| e.to_string())
    }

    /// The engine dropped these probes itself (detach, release_space).
    fn forget(&mut self) {
        self.0.clear();
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = ENGINE.unregister_batch(&self.0);
        }
    }
}

fn start() -> Result<Children, String> {
    let mut kids = Vec::new();
    for _ in 0..2 {
        let c = Child::spawn()?;
        services::add_child(c.pid, c.slot_page, c.task)?;
        kids.push(c);
    }
    let b = kids.pop();
    let a = kids.pop();
    Ok(Children { a, b })
}

fn started(k: &Children) -> CheckResult {
    let text = testfns::func("tf_alu").start;
    for c in [k.a()?, k.b()?] {
        let d = c.slot_page.abs_diff(text);
        ensure!(
            d < 1 << 30,
            "child {}: slot page {:#x} is {d:#x} from its text",
            c.pid,
            c.slot_page
        );
        ensure_eq!(
            peek(c, text, 16)?,
            own(text, 16),
            "child {}: text is the tracer's",
            c.pid
        );
    }
    Ok(format!(
        "children {} and {}, slot pages {:#x} and {:#x}",
        k.a()?.pid,
        k.b()?.pid,
        k.a()?.slot_page,
        k.b()?.slot_page
    ))
}

fn unprobed(k: &Children) -> CheckResult {
    let a = k.a()?;
    // SAFETY: tf_flags takes one integer (the tracer calls its own copy).
    let flags_here = unsafe { call_own("tf_flags", 3, 0, 0) }.ret;
    for (name, args, want) in [
        ("tf_alu", [10, 32, 0], 1396),
        ("tf_fact", [6, 0, 0], 720),
        ("tf_call", [21, 0, 0], 43),
        ("tf_loop", [5, 0, 0], 20),
        ("tf_jcc", [1, 2, 0], 101),
        ("tf_flags", [3, 0, 0], flags_here),
    ] {
        let o = call_named(a, name, args)?;
        ensure_eq!(o.ret, want, "child {name}");
        ensure_eq!(o.traps, 0, "traps in an unprobed child");
    }
    Ok(String::new())
}

fn uprobe_pre_only(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let rec = Recorder::leak();
    probes.kprobe(&uprobe(a, "alu_add", rec, false))?;
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!(o.ret, 1396, "result");
    // User probes are never boosted: the step ends with the slot's int3.
    ensure_eq!((rec.hits(), o.traps), (1, 2), "hits, traps");
    let seen = rec.pre.seen();
    ensure_eq!(
        (seen.gpr[RAX], seen.gpr[RDI]),
        (10, 10),
        "child's rax, rdi at alu_add"
    );
    ensure_eq!(
        seen.pc,
        testfns::point("alu_add").addr() as u64,
        "pc at the probe"
    );
    ensure_eq!(rec.last_space(), space(a), "space of the hit");
    probes.clear()?;
    Ok(String::new())
}

fn uprobe_stepped(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let rec = Recorder::leak();
    probes.kprobe(&uprobe(a, "alu_xor", rec, true))?;
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!(o.ret, 1396, "result");
    ensure_eq!(
        (rec.hits(), rec.post_hits(), o.traps),
        (1, 1, 2),
        "pre, post, traps"
    );
    let (pre, post) = (rec.pre.seen(), rec.post.seen());
    ensure_eq!(
        (pre.gpr[RAX], post.gpr[RAX]),
        (42, 127),
        "rax before and after xor"
    );
    ensure_eq!(
        post.pc,
        testfns::point("alu_imul").addr() as u64,
        "pc after the step"
    );
    probes.clear()?;
    Ok(String::new())
}

fn uprobe_simulated(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let recs: Vec<_> = (0..4).map(|_| Recorder::leak()).collect();
    for (p, r) in ["ca_call", "db_ret", "jc_short", "lo_loop"]
        .iter()
        .zip(&recs)
    {
        probes.kprobe(&uprobe(a, p, r, true))?;
    }
    let o = call_named(a, "tf_call", [21, 0, 0])?;
    ensure_eq!(
        (o.ret, o.traps),
        (43, 2),
        "tf_call: result, traps (two simulated hits)"
    );
    let (call_pre, call_post) = (recs[0].pre.seen(), recs[0].post.seen());
    ensure_eq!(
        call_post.pc,
        testfns::func("tf_double").start as u64,
        "call rel32 target"
    );
    ensure_eq!(
        call_post.gpr[RSP],
        call_pre.gpr[RSP] - 8,
        "call pushed in the child"
    );
    ensure_eq!(
        recs[1].post.seen().pc,
        testfns::point("ca_after").addr() as u64,
        "ret target"
    );
    let o = call_named(a, "tf_jcc", [1, 2, 0])?;
    ensure_eq!(o.ret, 101, "tf_jcc");
    ensure_eq!(
        recs[2].post.seen().pc,
        testfns::point("jc_target").addr() as u64,
        "jl taken"
    );
    let o = call_named(a, "tf_loop", [5, 0, 0])?;
    ensure_eq!(
        (o.ret, recs[3].hits()),
        (20, 5),
        "tf_loop: result, loop hits"
    );
    probes.clear()?;
    Ok(String::new())
}

fn uprobe_rip_relative(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let recs: Vec<_> = (0..3).map(|_| Recorder::leak()).collect();
    for (i, (p, r)) in ["rl_load", "rl_add_mem", "rs_imm"]
        .iter()
        .zip(&recs)
        .enumerate()
    {
        probes.kprobe(&uprobe(a, p, r, i != 1))?;
    }
    let o = call_named(a, "tf_rip_load", [3, 0, 0])?;
    ensure_eq!(o.ret, DATA0 + 3 + 0x1000 + 0x77, "tf_rip_load");
    ensure_eq!(
        recs[0].post.seen().gpr[RAX],
        DATA0,
        "rax after the relocated load"
    );
    let o = call_named(a, "tf_rip_store", [41, 0, 0])?;
    ensure_eq!(
        o.ret,
        42 + 0x12345,
        "tf_rip_store (11-byte rip-relative store)"
    );
    let scratch = testfns::scratch_addr();
    ensure_eq!(
        peek(a, scratch + 8, 8)?,
        0x12345u64.to_le_bytes().to_vec(),
        "the child's data written by the stepped store"
    );
    probes.clear()?;
    Ok(String::new())
}

fn uprobe_pushf_popf(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let names = ["fl_pushf", "fl_popf", "fl_pushf2"];
    for n in names {
        let d = <X86_64 as probe_core::Arch>::decode(
            testfns::point(n).addr(),
            &own(testfns::point(n).addr(), 15),
            probe_core::ExecMode::User,
        )
        .map_err(|e| e.to_string())?;
        ensure!(
            matches!(d.handling, Handling::StepOutOfLine { .. }),
            "{n}: user mode should step it, got {:?}",
            d.handling
        );
    }
    let recs: Vec<_> = names.iter().map(|_| Recorder::leak()).collect();
    for (n, r) in names.iter().zip(&recs) {
        probes.kprobe(&uprobe(a, n, r, true))?;
    }
    // SAFETY: tf_flags takes one integer.
    let here = unsafe { call_own("tf_flags", 3, 0, 0) }.ret;
    let o = call_named(a, "tf_flags", [3, 0, 0])?;
    ensure_eq!(
        o.ret,
        here,
        "flags pushed and popped in the child vs unprobed here"
    );
    ensure_eq!(o.traps, 6, "three stepped hits");
    probes.clear()?;
    Ok(format!("{here:#x}"))
}

fn set_arg_100(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    regs.set_arg(0, 100);
    PreAction::Continue
}

fn handler_writes_child_registers(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    probes.kprobe(
        &Kprobe::at(testfns::func("tf_alu").start)
            .in_space(space(a))
            .pre(set_arg_100),
    )?;
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!(
        o.ret,
        (((100 + 32) ^ 0x55) * 3 - 32) << 2,
        "tf_alu with rdi rewritten"
    );
    probes.clear()?;
    Ok(String::new())
}

fn uretprobe(c: &Child, func: &str, rec: &'static Recorder) -> Kretprobe<'static> {
    Kretprobe::at(testfns::func(func).start)
        .in_space(space(c))
        .entry(entry_record)
        .ret(ret_record)
        .data_size(8)
        .data(rec)
}

fn uretprobe_recursive(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a()?;
    let rec = Recorder::leak();
    probes.kretprobe(&uretprobe(a, "tf_fact", rec))?;
    let o = call_named(a, "tf_fact", [6, 0, 0])?;
    ensure_eq!(o.ret, 720, "6! in the child");
    ensure_eq!(
        o.traps,
        18,
        "six entries (probe and step end) and six trampoline traps"
    );
    ensure_eq!(rec.log.values(ENTRY), vec![6, 5, 4, 3, 2, 1], "entries");
    ensure_eq!(
        rec.log.values(RETURN),
        vec![1, 2, 6, 24, 120, 720],
        "returns in order"
    );
    ensure_eq!(
        rec.log.values(INSTANCE),
        vec![1, 2, 3, 4, 5, 6],
        "instance data"
    );
    ensure_eq!(ENGINE.pending_returns(a.task), 0, "instances left");
    probes.clear()?;
    Ok("user-mode trampoline: an int3 in the child's slot page".into())
}

fn same_address_two_children(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let (a, b) = (k.a()?, k.b()?);
    let (ra, rb) = (Recorder::leak(), Recorder::leak());
    probes.kprobe(&uprobe(a, "alu_add", ra, false))?;
    probes.kprobe(&uprobe(b, "alu_add", rb, true))?;
    let addr = testfns::point("alu_add").addr();
    for c in [a, b] {
        ensure_eq!(peek(c, addr, 1)?, vec![0xcc], "int3 in child {}", c.pid);
    }
    ensure_eq!(
        own(addr, 1),
        vec![0x48],
        "the tracer's own text is untouched"
    );
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!((o.ret, o.traps), (1396, 2), "child A");
    ensure_eq!((ra.hits(), rb.hits()), (1, 0), "only A's probe fired");
    let o = call_named(b, "tf_alu", [1, 2, 0])?;
    ensure_eq!(
        (o.ret, o.traps),
        ((((1 + 2) ^ 0x55) * 3 - 2) << 2, 2),
        "child B"
    );
    ensure_eq!(
        (ra.hits(), rb.hits(), rb.post_hits()),
        (1, 1, 1),
        "only B's probe fired"
    );
    ensure_eq!(
        (ra.last_space(), rb.last_space()),
        (space(a), space(b)),
        "spaces"
    );
    ensure_eq!(rb.pre.seen().gpr[RDI], 1, "B's own argument");
    probes.clear()?;
    Ok(String::new())
}

fn unregister_restores_child_text(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let (a, b) = (k.a()?, k.b()?);
    let funcs = ["tf_alu", "tf_call", "tf_loop", "tf_fact"];
    let mut n = 0;
    for c in [a, b] {
        for p in ["alu_entry", "alu_shl", "ca_call", "lo_body", "lo_loope"] {
            probes.kprobe(&uprobe(c, p, Recorder::leak(), p.len() % 2 == 0))?;
            n += 1;
        }
        probes.kretprobe(&uretprobe(c, "tf_fact", Recorder::leak()))?;
        n += 1;
    }
    for c in [a, b] {
        ensure_eq!(
            peek(c, testfns::point("lo_body").addr(), 1)?,
            vec![0xcc],
            "int3 in child {}",
            c.pid
        );
    }
    ensure_eq!(
        call_named(a, "tf_loop", [5, 0, 0])?.ret,
        20,
        "probed tf_loop in A"
    );
    probes.clear()?;
    for c in [a, b] {
        for f in funcs {
            let t = testfns::func(f);
            ensure!(
                peek(c, t.start, t.size)? == own(t.start, t.size),
                "child {}: {f} differs from the original after unregister",
                c.pid
            );
        }
    }
    // What stays: each child's return trampoline (one slot per space, kept
    // until the space goes, as Linux keeps a process's uprobe XOL page).
    ensure_eq!(
        ENGINE.slot_usage().0,
        2,
        "slots in use (the two trampolines)"
    );
    Ok(format!("{n} probes in two children, every byte back"))
}

fn detach_with_live_instance(k: &mut Children) -> CheckResult {
    let mut probes = Probes::default();
    let a = k.a.take().ok_or("child A is gone")?;
    let rec = Recorder::leak();
    probes.kretprobe(&uretprobe(&a, "tf_stop_inside", rec))?;
    probes.kprobe(&uprobe(&a, "alu_add", Recorder::leak(), true))?;
    probes.kprobe(&uprobe(&a, "lo_body", Recorder::leak(), false))?;
    // tf_stop_inside stops itself midway; then the child finishes untraced.
    a.send(&Command {
        func: testfns::func("tf_stop_inside").start as u64,
        args: [41, 0, 0],
        flags: FINISH,
    })?;
    let traps = run_until_stop(&a)?;
    ensure_eq!(
        (traps, rec.hits()),
        (2, 1),
        "entry traps (probe, step end), tracked call"
    );
    let regs = ptrace::getregs(a.pid)?;
    ensure_eq!(
        regs.rip as usize,
        testfns::point("si_after_stop").addr(),
        "stopped inside tf_stop_inside"
    );
    let mut pending = Vec::new();
    // SAFETY: the child is stopped by ptrace.
    unsafe {
        ENGINE.pending_return_frames(a.task, |frame, tramp, real| {
            pending.push((frame, tramp, real))
        })
    };
    ensure_eq!(pending.len(), 1, "live instances");
    let (frame, tramp, real) = pending[0];
    ensure!(
        tramp >= a.slot_page && tramp < a.slot_page + 4096,
        "trampoline {tramp:#x} outside the child's slot page"
    );
    ensure_eq!(
        peek(&a, frame, 8)?,
        (tramp as u64).to_le_bytes().to_vec(),
        "hijacked return address"
    );
    let mut put_back = 0;
    let mut write_err = None;
    // SAFETY: the child is stopped by ptrace during the call.
    unsafe {
        ENGINE.detach_space(a.pid as usize, &[a.task], |f, _t, r| {
            put_back += 1;
            if !a.mem.write(f, &(r as u64).to_le_bytes()) {
                write_err = Some(f);
            }
        })
    }
    .map_err(|e| e.to_string())?;
    probes.forget();
    ensure!(
        write_err.is_none(),
        "writing the real return address failed"
    );
    ensure_eq!(put_back, 1, "put_back calls");
    ensure_eq!(
        peek(&a, frame, 8)?,
        (real as u64).to_le_bytes().to_vec(),
        "real return address back"
    );
    for f in ["tf_alu", "tf_loop", "tf_stop_inside"] {
        let t = testfns::func(f);
        ensure!(
            peek(&a, t.start, t.size)? == own(t.start, t.size),
            "{f}: text not restored"
        );
    }
    ensure!(
        ENGINE.list::<64>().iter().all(|p| p.space != space(&a)),
        "probes left in the detached space"
    );
    ensure_eq!(rec.post_hits(), 0, "return handler of a detached instance");
    services::remove_child(a.pid);
    ptrace::detach(a.pid, 0)?;
    ensure_eq!(
        a.reply()?,
        42,
        "tf_stop_inside(41) returned to its real caller"
    );
    ensure_eq!(
        ptrace::wait(a.pid)?,
        Status::Exited(0),
        "child ran its script untraced, all correct"
    );
    Ok(format!(
        "real return address {real:#x} put back at {frame:#x}"
    ))
}

fn other_child_unaffected(k: &Children) -> CheckResult {
    let mut probes = Probes::default();
    let b = k.b()?;
    let rec = Recorder::leak();
    probes.kprobe(&uprobe(b, "alu_imul", rec, true))?;
    let o = call_named(b, "tf_alu", [10, 32, 0])?;
    ensure_eq!(
        (o.ret, o.traps, rec.hits()),
        (1396, 2, 1),
        "B: result, traps, hits"
    );
    probes.clear()?;
    Ok(String::new())
}

fn child_exit_releases_space(k: &mut Children) -> CheckResult {
    let mut probes = Probes::default();
    let b = k.b.take().ok_or("child B is gone")?;
    probes.kprobe(&uprobe(&b, "alu_add", Recorder::leak(), false))?;
    probes.kretprobe(&uretprobe(&b, "tf_fact", Recorder::leak()))?;
    ensure_eq!(
        call_named(&b, "tf_fact", [3, 0, 0])?.ret,
        6,
        "probed call before exit"
    );
    ensure!(ENGINE.slot_usage().1 > 0, "no slot page held for B");
    b.send(&Command::default())?;
    ptrace::cont(b.pid, 0)?;
    ensure_eq!(ptrace::wait(b.pid)?, Status::Exited(0), "B exits");
    // B exited: its task state is used by nothing any more.
    ENGINE
        .release_task(b.task)
        .map_err(|e| format!("release_task: {e}"))?;
    ENGINE
        .release_space(b.pid as usize)
        .map_err(|e| e.to_string())?;
    probes.forget();
    services::remove_child(b.pid);
    ensure!(
        ENGINE.list::<64>().is_empty(),
        "probes left after release_space"
    );
    ensure_eq!(
        ENGINE.slot_usage(),
        (0, 0),
        "slots and pages after release_space"
    );
    ensure_eq!(
        ENGINE.free_instances(),
        32,
        "return instances back in the pool"
    );
    Ok(String::new())
}

/// The signal the next hit of [`send_signal_once`] sends (0: none).
static SIGNAL_TO_SEND: AtomicI32 = AtomicI32::new(0);

/// A pre-handler that sends the hit child a signal, once: it arrives
/// while the child steps the probed instruction out of line.
fn send_signal_once(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    let sig = SIGNAL_TO_SEND.swap(0, Ordering::AcqRel);
    if let (true, Space::User(pid)) = (sig != 0, ctx.space) {
        // SAFETY: kill(2) to our own (stopped, traced) child.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
    PreAction::Continue
}

fn cold(a: u64) -> u64 {
    (a ^ 0x5a5a) + 9
}

fn handler_result(c: &Child) -> Result<u64, String> {
    let b = peek(c, core::ptr::addr_of!(HANDLER_RESULT) as usize, 8)?;
    Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short read")?))
}

fn reset_handler_result(c: &Child) -> Result<(), String> {
    let at = core::ptr::addr_of!(HANDLER_RESULT) as usize;
    ensure!(
        c.mem.write(at, &0u64.to_le_bytes()),
        "writing the child's result"
    );
    Ok(())
}

/// A signal arrives while the child steps a uprobe's instruction, and its
/// handler hits another uprobe.
fn signal_handler_hits_uprobe(k: &Children, policy: SignalPolicy) -> CheckResult {
    let a = k.a()?;
    set_signal_policy(policy);
    let mut probes = Probes::default();
    let (rec, inner) = (Recorder::leak(), Recorder::leak());
    let xor = testfns::point("alu_xor").addr();
    probes.kprobe(&Kprobe::at(xor).in_space(space(a)).pre(send_signal_once))?;
    probes.kprobe(&uprobe(a, "alu_xor", rec, true))?;
    probes.kprobe(&uprobe(a, "cold_b", inner, true))?;
    reset_handler_result(a)?;
    let (d0, a0, _) = signal_record();
    let leaked = ENGINE.leaked_steps();
    SIGNAL_TO_SEND.store(libc::SIGUSR1, Ordering::Release);
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!(o.ret, 1396, "tf_alu with a signal during its step");
    ensure_eq!(handler_result(a)?, cold(5), "the handler's tf_cold(5)");
    let (d, ab, _) = signal_record();
    let alu = match policy {
        SignalPolicy::Defer => {
            ensure_eq!(
                (d - d0, ab - a0),
                (1, 0),
                "signals held back, steps aborted"
            );
            (1, 1)
        }
        SignalPolicy::Abort => {
            ensure_eq!(
                (d - d0, ab - a0),
                (0, 1),
                "signals held back, steps aborted"
            );
            // Back at the probe address: it fires again after the handler.
            (2, 1)
        }
    };
    ensure_eq!((rec.hits(), rec.post_hits()), alu, "alu_xor (pre, post)");
    ensure_eq!(
        (inner.hits(), inner.post_hits()),
        (1, 1),
        "cold_b in the signal handler (pre, post)"
    );
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    ensure!(
        !ENGINE.should_defer_signal(a.task),
        "a step is still parked"
    );
    probes.clear()?;
    Ok(format!(
        "{policy:?}: the handler's own uprobe stepped, the interrupted step {}",
        if policy == SignalPolicy::Defer {
            "ended before the handler"
        } else {
            "undone and fired again after it"
        }
    ))
}

/// A signal arrives after the copied instruction ran in the slot, before
/// the step-end trap: deferring lets the trap come; aborting completes the
/// step at once (post-handlers included) instead of undoing it.
fn signal_after_copy(k: &Children, policy: SignalPolicy) -> CheckResult {
    let a = k.a()?;
    set_signal_policy(policy);
    let mut probes = Probes::default();
    let (rec, inner) = (Recorder::leak(), Recorder::leak());
    probes.kprobe(&uprobe(a, "alu_xor", rec, true))?;
    probes.kprobe(&uprobe(a, "cold_b", inner, true))?;
    reset_handler_result(a)?;
    let (d0, a0, _) = signal_record();
    let leaked = ENGINE.leaked_steps();
    signal_after_next_copy(libc::SIGUSR1);
    let o = call_named(a, "tf_alu", [10, 32, 0])?;
    ensure_eq!(
        o.ret,
        1396,
        "tf_alu with a signal between its copy and its step end"
    );
    ensure_eq!(handler_result(a)?, cold(5), "the handler's tf_cold(5)");
    let (d, ab, _) = signal_record();
    let want = match policy {
        SignalPolicy::Defer => (1, 0),
        SignalPolicy::Abort => (0, 1),
    };
    ensure_eq!((d - d0, ab - a0), want, "signals held back, steps settled");
    ensure_eq!(
        (rec.hits(), rec.post_hits(), rec.post.seen().gpr[RAX]),
        (1, 1, 127),
        "alu_xor (pre, post, rax after the xor): the copy ran once"
    );
    ensure_eq!(
        (inner.hits(), inner.post_hits()),
        (1, 1),
        "cold_b in the handler"
    );
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    ensure!(
        !ENGINE.should_defer_signal(a.task),
        "a step is still parked"
    );
    probes.clear()?;
    Ok(format!(
        "{policy:?}: the step ended once, its post-handler ran before the signal handler"
    ))
}

/// A signal arrives while the child steps a uprobe's instruction; the
/// tracer unregisters that uprobe while the child is in its handler.
fn unregistered_while_in_handler(k: &Children, policy: SignalPolicy) -> CheckResult {
    let a = k.a()?;
    set_signal_policy(policy);
    let slots = ENGINE.slot_usage().0;
    let mut probes = Probes::default();
    let rec = Recorder::leak();
    let xor = testfns::point("alu_xor").addr();
    probes.kprobe(&Kprobe::at(xor).in_space(space(a)).pre(send_signal_once))?;
    probes.kprobe(&uprobe(a, "alu_xor", rec, true))?;
    reset_handler_result(a)?;
    let (d0, a0, _) = signal_record();
    let leaked = ENGINE.leaked_steps();
    SIGNAL_TO_SEND.store(libc::SIGUSR2, Ordering::Release);
    a.send(&Command {
        func: testfns::func("tf_alu").start as u64,
        args: [10, 32, 0],
        flags: STOP_AFTER,
    })?;
    run_until_stop(a)?;
    ensure_eq!(
        handler_result(a)?,
        cold(6),
        "the child stopped in its SIGUSR2 handler"
    );
    ensure!(
        !ENGINE.should_defer_signal(a.task),
        "a step is parked while the child runs its handler"
    );
    probes.clear()?;
    ensure_eq!(
        peek(a, xor, 1)?,
        own(xor, 1),
        "alu_xor restored in the child"
    );
    ensure_eq!(
        ENGINE.slot_usage().0,
        slots,
        "slots in use once the probe is gone"
    );
    run_until_stop(a)?;
    ensure_eq!(a.reply()?, 1396, "tf_alu after the handler returned");
    let (d, ab, _) = signal_record();
    let want = match policy {
        SignalPolicy::Defer => ((1, 0), (1, 1)),
        SignalPolicy::Abort => ((0, 1), (1, 0)),
    };
    ensure_eq!(
        (d - d0, ab - a0),
        want.0,
        "signals held back, steps aborted"
    );
    ensure_eq!((rec.hits(), rec.post_hits()), want.1, "alu_xor (pre, post)");
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    Ok(format!("{policy:?}: the probe and its slot freed while the child was in its handler, the child's result right"))
}

fn grace_periods() -> CheckResult {
    let (checked, in_slot) = services::grace_record();
    ensure!(checked > 0, "no grace period checked a child");
    ensure_eq!(
        in_slot,
        0,
        "children found inside a slot during a grace period"
    );
    Ok(format!(
        "{checked} stopped children checked, none inside a slot"
    ))
}

/// Run every check; true when all passed.
pub fn run_all() -> bool {
    let mut r = Report::new();
    println!("tracer: uprobes and uretprobes in child processes through ptrace");
    let mut kids = match start() {
        Ok(k) => k,
        Err(e) => {
            r.check("two children forked and traced", || Err(e));
            return r.finish();
        }
    };
    r.check(
        "two children forked and traced, each with a slot page near its text",
        || started(&kids),
    );
    r.check(
        "unprobed: the child's functions return correct results",
        || unprobed(&kids),
    );
    r.check(
        "uprobe on an ALU instruction: the child's registers",
        || uprobe_pre_only(&kids),
    );
    r.check(
        "uprobe with a post-handler: a real step in the child's slot",
        || uprobe_stepped(&kids),
    );
    r.check("uprobes on simulated call, ret, jcc, loop", || {
        uprobe_simulated(&kids)
    });
    r.check(
        "uprobes on rip-relative load and store (fixed up for the child's slot)",
        || uprobe_rip_relative(&kids),
    );
    r.check("uprobes on pushf/popf (stepped in user mode)", || {
        uprobe_pushf_popf(&kids)
    });
    r.check("a pre-handler rewrites the child's registers", || {
        handler_writes_child_registers(&kids)
    });
    r.check("uretprobe on a recursive function in a child", || {
        uretprobe_recursive(&kids)
    });
    r.check(
        "same address in two children, different probes: each fires only in its child",
        || same_address_two_children(&kids),
    );
    r.check(
        "unregister restores the children's text byte for byte",
        || unregister_restores_child_text(&kids),
    );
    for policy in [SignalPolicy::Defer, SignalPolicy::Abort] {
        let how = match policy {
            SignalPolicy::Defer => "held back until the step ends (should_defer_signal)",
            SignalPolicy::Abort => "the step undone first (abort_user_step)",
        };
        r.check(
            &format!("a signal during a uprobe step, its handler hits another uprobe: {how}"),
            || signal_handler_hits_uprobe(&kids, policy),
        );
        r.check(
            &format!("a signal after the copied instruction ran, before the step-end trap: {how}"),
            || signal_after_copy(&kids, policy),
        );
        r.check(
            &format!("a signal during a uprobe step, the probe unregistered while the child is in its handler: {how}"),
            || unregistered_while_in_handler(&kids, policy),
        );
    }
    set_signal_policy(SignalPolicy::Defer);
    r.check("detach with a live uretprobe instance: text restored, return address put back, child finishes untraced", || {
        detach_with_live_instance(&mut kids)
    });
    r.check("the other child is unaffected by the detach", || {
        other_child_unaffected(&kids)
    });
    r.check(
        "a child exits with probes registered: release_space frees everything",
        || child_exit_releases_space(&mut kids),
    );
    crate::usdt_cases::run(&mut r);
    r.check(
        "grace periods: every child stopped outside its slot page",
        grace_periods,
    );
    if !r.failed().is_empty() {
        println!("failed: {}", r.failed().join(", "));
    }
    r.finish()
}
