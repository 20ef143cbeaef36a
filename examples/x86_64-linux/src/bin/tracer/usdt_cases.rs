//! A `uprobe_events` event on the tracer's own binary, by file: the USDT
//! site `tracer:usdt_work` ([`crate::usdt`]) probed in every process that
//! maps the file, its semaphore counted up and down in each.
//!
//! The tracer plays the kernel's part: it reports the file's mappings of
//! each child from `/proc/PID/maps` ([`FileUprobes::mapped`]: executable
//! mappings, where Linux places uprobes, and private writable ones, where
//! it counts semaphores), a fork as the kernel would at fork time
//! ([`Engine::fork_space`], then [`FileUprobes::forked`]), and a child's
//! end ([`Engine::release_space`], then [`FileUprobes::space_released`]).
//!
//! The event is Linux's definition text, parsed by `probe-events`; its
//! handler is a plain `fn` pre-handler with the event as its data (one
//! handler for every placement, so nothing is attached per space), which
//! fetches the arguments from the hit child and writes a record into a ring
//! buffer; the checks read the records back and print them in Linux's
//! trace format.
//!
//! [`Engine::fork_space`]: probe_core::Engine::fork_space
//! [`Engine::release_space`]: probe_core::Engine::release_space

use std::os::unix::fs::MetadataExt;

use libc::pid_t;
use probe_core::{
    FileId, FileMapping, FileProbeId, FileUprobe, FileUprobes, KernelServices, Kprobe, PreAction,
    ProbeContext, ProbeSpec, Registers, Space,
};
use probe_events::fetch::{fetch_all, Fault, FetchEnv, Record, COMM_LEN};
use probe_events::format::{write_trace_line, LineStyle, NoSymbols};
use probe_events::live::RECORD_WORDS;
use probe_events::RingBuffer;
use probe_events::{parse, Command as EventCommand, CpuRing, EventDef, Flavor, FullMode, Point};
use probe_hal_x86_64::RegNames;
use x86_64_linux::recorder::{pre_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use crate::cases::{own, peek};
use crate::child::{fork_here, Child, Command, STOP_AFTER};
use crate::ptrace::{self, Status};
use crate::services::{self, TracerServices};
use crate::trace::{call, call_named, run_until_stop};
use crate::usdt::{self, Elf};
use crate::ENGINE;

type CheckResult = Result<String, String>;

/// The kernel's table of file uprobes (4 events, 32 placements and
/// mappings).
static FILES: FileUprobes<spin::Mutex<()>, 4, 32> = FileUprobes::new();

/// The trace buffer: one CPU (the tracer's), drop-newest.
static RINGS: [CpuRing<256, RECORD_WORDS>; 1] = [const { CpuRing::new() }; 1];
static RING: RingBuffer<'static, 256, RECORD_WORDS> = RingBuffer::new(&RINGS, FullMode::DropNewest);

/// An event: what its handler needs.
struct Event {
    index: u16,
    def: EventDef,
}

/// The hit child's memory and name, for the fetch arguments.
struct ChildEnv(usize);

impl FetchEnv for ChildEnv {
    fn read(&self, addr: usize, buf: &mut [u8], _user: bool) -> Result<(), Fault> {
        TracerServices
            .read(Space::User(self.0), addr, buf)
            .map_err(|_| Fault)
    }

    fn comm(&self) -> Option<[u8; COMM_LEN]> {
        let name = std::fs::read(format!("/proc/{}/comm", self.0)).ok()?;
        let mut c = [0u8; COMM_LEN];
        let name = name.strip_suffix(b"\n").unwrap_or(&name);
        let n = name.len().min(COMM_LEN - 1);
        c[..n].copy_from_slice(&name[..n]);
        Some(c)
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime with a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The event's pre-handler, the same for every placement: fetch, record.
fn on_event(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let (Some(ev), Space::User(pid)) = (ctx.data.downcast_ref::<Event>(), ctx.space) else {
        return PreAction::Continue;
    };
    let env = ChildEnv(pid);
    let mut rec = Record {
        event: ev.index,
        cpu: ctx.cpu as u16,
        // A uprobe handler runs in task context: interrupts on.
        flags: 0,
        pid: Some(pid as u32),
        timestamp_ns: Some(now_ns()),
        comm: env.comm(),
        ip: ctx.addr as u64,
        func: 0,
        ..Default::default()
    };
    fetch_all(&ev.def, &*regs, &RegNames, &env, &mut rec);
    let mut words = [0u64; RECORD_WORDS];
    if let Some(n) = rec.encode(&mut words) {
        RING.write(ctx.cpu, &words[..n]);
    }
    PreAction::Continue
}

/// Everything the checks share.
#[derive(Default)]
struct World {
    /// The probed file.
    path: String,
    file: Option<FileId>,
    /// File offsets of the site and of the semaphore.
    offsets: (u64, u64),
    event: Option<&'static Event>,
    id: Option<FileProbeId>,
    /// P1, P2, P3 and F (P1's fork), as they come.
    kids: Vec<(&'static str, Child)>,
    /// (pid, round) of every record the children should have made.
    expected: Vec<(pid_t, u64)>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = FILES.unregister(&ENGINE, id);
        }
        for (_, c) in self.kids.drain(..).rev() {
            // SAFETY: killing our own (traced) process.
            unsafe { libc::kill(c.pid, libc::SIGKILL) };
            let _ = ptrace::wait(c.pid);
            // The child is dead: its task state is used by nothing.
            let _ = ENGINE.release_task(c.task);
            let _ = ENGINE.release_space(c.pid as usize);
            FILES.space_released(c.pid as usize);
            services::remove_child(c.pid);
        }
    }
}

impl World {
    fn kid(&self, name: &str) -> Result<&Child, String> {
        self.kids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| format!("child {name} is gone"))
    }

    fn file(&self) -> Result<FileId, String> {
        self.file.ok_or_else(|| "no probed file".to_string())
    }

    fn id(&self) -> Result<FileProbeId, String> {
        self.id.ok_or_else(|| "no file uprobe".to_string())
    }

    /// Start a child and report its mappings of the probed file.
    fn spawn(&mut self, name: &'static str) -> Result<usize, String> {
        let c = Child::spawn()?;
        services::add_child(c.pid, c.slot_page, c.task)?;
        let pid = c.pid;
        self.kids.push((name, c));
        report_mappings(pid, self.file()?)
    }

    /// The spaces the event is placed in, sorted.
    fn placed_in(&self) -> Result<Vec<usize>, String> {
        let mut v: Vec<usize> = FILES
            .placements::<8>(self.id()?)
            .iter()
            .map(|&(s, _)| s)
            .collect();
        v.sort();
        Ok(v)
    }

    fn pids(&self, names: &[&str]) -> Result<Vec<usize>, String> {
        let mut v = Vec::new();
        for n in names {
            v.push(self.kid(n)?.pid as usize);
        }
        v.sort();
        Ok(v)
    }

    /// Run `usdt_loop(times)` in `name`; it must see the semaphore set
    /// `seen` times (the records it makes are expected when it does).
    fn run_loop(&mut self, name: &str, times: u64, seen: u64) -> Result<(), String> {
        let c = self.kid(name)?;
        let o = call(c, usdt::usdt_loop as *const () as usize, [times, 0, 0])?;
        ensure_eq!(o.ret, seen, "{name}: rounds that saw the semaphore set");
        let pid = c.pid;
        self.expected.extend((0..seen).map(|i| (pid, i)));
        Ok(())
    }
}

/// Report every mapping of `file` in `pid` to the file layer, as a kernel
/// does from mmap: it places probes only in the private executable ones
/// and counts semaphores only in the private writable ones (read-only
/// aliases of the same file pages at segment boundaries are ignored).
fn report_mappings(pid: pid_t, file: FileId) -> Result<usize, String> {
    let mut n = 0;
    for m in usdt::file_mappings(pid)? {
        if m.dev == file.dev && m.ino == file.ino {
            let region = FileMapping {
                start: m.start,
                len: m.len,
                file_off: m.file_off,
                exec: m.exec(),
                write: m.perms[1] == b'w',
                shared: m.perms[3] == b's',
            };
            FILES
                .mapped(&ENGINE, pid as usize, file, region)
                .map_err(|e| format!("mapped({pid}, {:#x}): {e}", m.start))?;
            n += 1;
        }
    }
    ensure!(n >= 2, "child {pid}: {n} mappings of the probed file");
    Ok(n)
}

/// The semaphore in `c`, read through the engine's services (what the
/// file layer writes with).
fn semaphore(c: &Child) -> Result<u16, String> {
    let mut b = [0u8; 2];
    ENGINE
        .services()
        .read(Space::User(c.pid as usize), usdt::semaphore(), &mut b)
        .map_err(|_| format!("child {}: semaphore unreadable", c.pid))?;
    Ok(u16::from_ne_bytes(b))
}

fn semaphores(w: &World, names: &[&str]) -> Result<Vec<u16>, String> {
    names.iter().map(|n| semaphore(w.kid(n)?)).collect()
}

/// The site's first byte in each named child.
fn site_bytes(w: &World, names: &[&str]) -> Result<Vec<u8>, String> {
    names
        .iter()
        .map(|n| Ok(peek(w.kid(n)?, usdt::usdt_work(), 1)?[0]))
        .collect()
}

const SITE_LEN: usize = 16;

fn note_and_file(w: &mut World) -> CheckResult {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    w.path = exe.to_str().ok_or("exe path is not UTF-8")?.to_string();
    let elf = Elf::read(&w.path)?;
    let notes = elf.sdt_notes()?;
    let note = notes
        .iter()
        .find(|n| n.provider == "tracer" && n.name == "usdt_work")
        .ok_or("no tracer:usdt_work note")?;
    ensure_eq!(note.args.as_str(), "8@%rdi 8@%rsi", "note arguments");
    let text_off = elf.file_offset(note.pc).ok_or("site outside the file")?;
    let sem_off = elf
        .file_offset(note.semaphore)
        .ok_or("semaphore outside the file")?;
    let md = std::fs::metadata(&w.path).map_err(|e| e.to_string())?;
    let file = FileId {
        dev: md.dev(),
        ino: md.ino(),
    };
    // The same offsets from this process's own mappings of the file.
    let maps = usdt::file_mappings(std::process::id() as pid_t)?;
    let off_of = |addr: usize| {
        maps.iter()
            .filter(|m| m.dev == file.dev && m.ino == file.ino)
            .find(|m| addr >= m.start && addr - m.start < m.len)
            .map(|m| m.file_off + (addr - m.start) as u64)
    };
    ensure_eq!(
        off_of(usdt::usdt_work()),
        Some(text_off),
        "site: file offset from /proc/self/maps vs the note"
    );
    ensure_eq!(
        off_of(usdt::semaphore()),
        Some(sem_off),
        "semaphore: file offset from /proc/self/maps vs the note"
    );
    w.file = Some(file);
    w.offsets = (text_off, sem_off);
    Ok(format!(
        "{}:{} pc {:#x} semaphore {:#x} → file offsets {text_off:#x} ({sem_off:#x}), file {:02x}:{:02x} inode {}",
        note.provider,
        note.name,
        note.pc,
        note.semaphore,
        libc::major(file.dev),
        libc::minor(file.dev),
        file.ino
    ))
}

fn two_children(w: &mut World) -> CheckResult {
    let file = w.file()?;
    let n1 = w.spawn("P1")?;
    let n2 = w.spawn("P2")?;
    let (text_off, sem_off) = w.offsets;
    let line = format!(
        "p:demo/usdt_work {}:{text_off:#x}({sem_off:#x}) arg1=%di:u64 s=+0(%si):string",
        w.path
    );
    let def = match parse(&line, Flavor::Uprobe, &RegNames) {
        Ok(EventCommand::Define(d)) => d,
        other => return Err(format!("{line}: {other:?}")),
    };
    let Point::File {
        path,
        offset,
        ref_ctr,
    } = &def.point
    else {
        return Err(format!("not a file point: {:?}", def.point));
    };
    ensure_eq!(
        (path.as_str(), *offset, *ref_ctr),
        (w.path.as_str(), text_off, Some(sem_off)),
        "parsed point"
    );
    let md = std::fs::metadata(path.as_str()).map_err(|e| e.to_string())?;
    ensure_eq!(
        (md.dev(), md.ino()),
        (file.dev, file.ino),
        "the path's file"
    );
    let (offset, ref_ctr) = (*offset, *ref_ctr);
    let ev: &'static Event = Box::leak(Box::new(Event { index: 0, def }));
    w.event = Some(ev);
    let id = FILES
        .register(
            &ENGINE,
            FileUprobe {
                file,
                offset,
                ref_ctr,
                spec: ProbeSpec::Kprobe(Kprobe::at(0).pre(on_event).data(ev)),
            },
        )
        .map_err(|e| e.to_string())?;
    w.id = Some(id);
    ensure_eq!(w.placed_in()?, w.pids(&["P1", "P2"])?, "placed in");
    ensure_eq!(
        site_bytes(w, &["P1", "P2"])?,
        vec![0xcc; 2],
        "int3 at the site"
    );
    ensure_eq!(
        (own(usdt::usdt_work(), 1)[0], semaphore_here()),
        (0x90, 0),
        "the tracer's own site and semaphore untouched"
    );
    let sems = semaphores(w, &["P1", "P2"])?;
    ensure_eq!(sems, vec![1, 1], "semaphores while enabled");
    w.run_loop("P1", 3, 3)?;
    w.run_loop("P2", 2, 2)?;
    Ok(format!(
        "`{line}`: placed in {} and {} ({n1} and {n2} mappings reported), semaphores {sems:?}, P1 saw it set 3/3 rounds, P2 2/2",
        w.kid("P1")?.pid,
        w.kid("P2")?.pid
    ))
}

fn semaphore_here() -> u16 {
    // SAFETY: the tracer's own copy of the semaphore (readable data).
    unsafe { core::ptr::read_volatile(usdt::semaphore() as *const u16) }
}

fn third_child(w: &mut World) -> CheckResult {
    let n = w.spawn("P3")?;
    ensure_eq!(w.placed_in()?, w.pids(&["P1", "P2", "P3"])?, "placed in");
    ensure_eq!(site_bytes(w, &["P3"])?, vec![0xcc], "int3 at the site");
    let sem = semaphore(w.kid("P3")?)?;
    ensure_eq!(sem, 1, "P3's semaphore");
    w.run_loop("P3", 4, 4)?;
    Ok(format!(
        "P3 {}: {n} mappings reported at its start, placed, semaphore {sem}, 4/4 rounds",
        w.kid("P3")?.pid
    ))
}

/// Fork `parent` (a command in it): the kernel's fork hooks run while both
/// are stopped at the fork; both then return from `fork()`.
fn fork_child(parent: &Child) -> Result<Child, String> {
    ptrace::set_options(
        parent.pid,
        libc::PTRACE_O_EXITKILL | libc::PTRACE_O_TRACEFORK,
    )?;
    parent.send(&Command {
        func: fork_here as *const () as u64,
        args: [0; 3],
        flags: STOP_AFTER,
    })?;
    ptrace::cont(parent.pid, 0)?;
    let st = ptrace::wait_raw(parent.pid)?;
    ensure!(
        libc::WIFSTOPPED(st) && st >> 8 == libc::SIGTRAP | (libc::PTRACE_EVENT_FORK << 8),
        "parent {}: status {st:#x}, not a fork event",
        parent.pid
    );
    let pid = ptrace::event_msg(parent.pid)? as pid_t;
    let st = ptrace::wait_raw(pid)?;
    ensure!(
        libc::WIFSTOPPED(st) && libc::WSTOPSIG(st) == libc::SIGSTOP,
        "fork {pid}: status {st:#x} at its start"
    );
    let f = Child::forked_from(parent, pid)?;
    services::add_child(pid, f.slot_page, f.task)?;
    // As the kernel at fork: the engine (address-space probes go from the
    // copy), then the file layer (file probes follow).
    // Both are stopped; the fork has not run.
    ENGINE
        .fork_space(parent.pid as usize, pid as usize, parent.task, f.task)
        .map_err(|e| format!("fork_space: {e}"))?;
    FILES
        .forked(&ENGINE, parent.pid as usize, pid as usize)
        .map_err(|e| format!("forked: {e}"))?;
    run_until_stop(parent)?;
    ensure_eq!(parent.reply()?, pid as u64, "fork() in the parent");
    run_until_stop(&f)?;
    ensure_eq!(f.reply()?, 0, "fork() in the fork");
    Ok(f)
}

fn fork_follows(w: &mut World) -> CheckResult {
    let p1 = w.kid("P1")?;
    let alu = testfns::point("alu_add").addr();
    let rec = Recorder::leak();
    let space_probe = ENGINE
        .register_kprobe(
            &Kprobe::at(alu)
                .in_space(Space::User(p1.pid as usize))
                .pre(pre_record)
                .data(rec),
        )
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let p1 = w.kid("P1")?;
        ensure_eq!(
            peek(p1, alu, 1)?,
            vec![0xcc],
            "P1: address-space uprobe armed"
        );
        let f = fork_child(p1)?;
        let fpid = f.pid;
        w.kids.push(("F", f));
        let (p1, f) = (w.kid("P1")?, w.kid("F")?);
        ensure_eq!(
            (peek(f, alu, 1)?, own(alu, 1)),
            (own(alu, 1), vec![0x48]),
            "F: the address-space uprobe did not follow (original byte)"
        );
        ensure_eq!(
            peek(p1, alu, 1)?,
            vec![0xcc],
            "P1 keeps its address-space uprobe"
        );
        ensure_eq!(
            site_bytes(w, &["P1", "F"])?,
            vec![0xcc; 2],
            "the file uprobe followed into F"
        );
        ensure_eq!(
            w.placed_in()?,
            w.pids(&["P1", "P2", "P3", "F"])?,
            "placed in"
        );
        let sem = semaphore(f)?;
        ensure_eq!(sem, 1, "F's semaphore (copied, already counting)");
        let o = call_named(f, "tf_alu", [10, 32, 0])?;
        ensure_eq!(
            (o.ret, o.traps, rec.hits()),
            (1396, 0, 0),
            "F: tf_alu unprobed"
        );
        let o = call_named(w.kid("P1")?, "tf_alu", [10, 32, 0])?;
        ensure!(o.traps > 0, "P1: no trap at its address-space uprobe");
        ensure_eq!((o.ret, rec.hits()), (1396, 1), "P1: tf_alu probed");
        w.run_loop("F", 5, 5)?;
        Ok(format!(
            "F {fpid} (fork of P1): site int3 (file uprobe followed), alu_add original (address-space uprobe did not), semaphore {sem}, 5/5 rounds; P1's address-space uprobe hit 1, F's 0"
        ))
    })();
    ENGINE
        .unregister(space_probe)
        .map_err(|e| format!("unregister the address-space uprobe: {e}"))?;
    let r = result?;
    let t = testfns::func("tf_alu");
    for n in ["P1", "F"] {
        ensure!(
            peek(w.kid(n)?, t.start, t.size)? == own(t.start, t.size),
            "{n}: tf_alu differs from the original"
        );
    }
    Ok(r)
}

/// Drain the ring: the records' trace lines.
fn drain(def: &EventDef) -> Result<Vec<(Record, String)>, String> {
    let mut out = [0u64; RECORD_WORDS];
    let mut v = Vec::new();
    while let Some(n) = RING.read(0, &mut out) {
        let rec = Record::decode(&out[..n]).ok_or("a malformed record")?;
        let mut line = String::new();
        write_trace_line(&mut line, def, &rec, &NoSymbols, LineStyle::Modern)
            .map_err(|e| e.to_string())?;
        v.push((rec, line));
    }
    Ok(v)
}

fn trace(w: &mut World) -> CheckResult {
    let ev = w.event.ok_or("no event")?;
    let lines = drain(&ev.def)?;
    ensure_eq!(RING.lost(0), 0, "records lost");
    ensure_eq!(
        lines.len(),
        w.expected.len(),
        "records (P1 3, P2 2, P3 4, F 5)"
    );
    let site = usdt::usdt_work();
    let mut last_ts = 0;
    for ((rec, line), &(pid, i)) in lines.iter().zip(&w.expected) {
        let head = format!("{:>16}-{:<7} [000] ..... ", "tracer", pid);
        let tail = format!(
            ": usdt_work: ({site:#x}) arg1={i} s=\"{}\"",
            usdt::USDT_STRING
        );
        ensure!(
            line.starts_with(&head) && line.ends_with(&tail),
            "line {line:?}: want {head:?} … {tail:?}"
        );
        let ts = rec.timestamp_ns.unwrap_or(0);
        ensure!(ts >= last_ts, "timestamps go back: {line}");
        last_ts = ts;
    }
    for (_, l) in &lines {
        println!("      {l}");
    }
    let mut per = Vec::new();
    for n in ["P1", "P2", "P3", "F"] {
        let pid = w.kid(n)?.pid;
        per.push(format!(
            "{n} {}",
            lines
                .iter()
                .filter(|(r, _)| r.pid == Some(pid as u32))
                .count()
        ));
    }
    w.expected.clear();
    Ok(format!(
        "{} lines (printed above), per process: {}",
        lines.len(),
        per.join(", ")
    ))
}

/// `name` exits: the kernel's exit path (engine, then file layer).
fn exit_child(w: &mut World, name: &str) -> Result<pid_t, String> {
    let k = w
        .kids
        .iter()
        .position(|(n, _)| *n == name)
        .ok_or_else(|| format!("child {name} is gone"))?;
    let (_, c) = w.kids.remove(k);
    c.send(&Command::default())?;
    ptrace::cont(c.pid, 0)?;
    loop {
        match ptrace::wait(c.pid)? {
            Status::Exited(0) => break,
            // A fork of it that ended: SIGCHLD, delivered.
            Status::Stopped(sig) => ptrace::cont(c.pid, sig)?,
            other => return Err(format!("{name} {}: {other:?}", c.pid)),
        }
    }
    // The child exited: its task state is used by nothing any more.
    ENGINE
        .release_task(c.task)
        .map_err(|e| format!("release_task: {e}"))?;
    ENGINE
        .release_space(c.pid as usize)
        .map_err(|e| e.to_string())?;
    FILES.space_released(c.pid as usize);
    services::remove_child(c.pid);
    Ok(c.pid)
}

fn child_exits(w: &mut World) -> CheckResult {
    let pid = exit_child(w, "P2")?;
    ensure!(
        ENGINE
            .list::<64>()
            .iter()
            .all(|p| p.space != Space::User(pid as usize)),
        "probes left in P2's space"
    );
    ensure_eq!(w.placed_in()?, w.pids(&["P1", "P3", "F"])?, "placed in");
    Ok(format!("P2 {pid} exited: its placement gone, 3 left"))
}

fn disable_enable(w: &mut World) -> CheckResult {
    const LIVE: [&str; 3] = ["P1", "P3", "F"];
    let id = w.id()?;
    FILES
        .set_enabled(&ENGINE, id, false)
        .map_err(|e| e.to_string())?;
    let off = semaphores(w, &LIVE)?;
    ensure_eq!(off, vec![0; 3], "semaphores while disabled");
    let t = usdt::usdt_work();
    for n in LIVE {
        ensure!(
            peek(w.kid(n)?, t, SITE_LEN)? == own(t, SITE_LEN),
            "{n}: site not original while disabled"
        );
        w.run_loop(n, 2, 0)?;
    }
    ensure_eq!(
        drain(&w.event.ok_or("no event")?.def)?.len(),
        0,
        "records while disabled"
    );
    FILES
        .set_enabled(&ENGINE, id, true)
        .map_err(|e| e.to_string())?;
    let on = semaphores(w, &LIVE)?;
    ensure_eq!(on, vec![1; 3], "semaphores enabled again");
    ensure_eq!(site_bytes(w, &LIVE)?, vec![0xcc; 3], "int3 again");
    w.run_loop("P3", 1, 1)?;
    let again = drain(&w.event.ok_or("no event")?.def)?;
    ensure_eq!(again.len(), 1, "records after enabling again");
    w.expected.clear();
    Ok(format!(
        "semaphores (P1, P3, F) disabled {off:?} (0/2 rounds each, no record, sites original), enabled again {on:?} (a hit)"
    ))
}

fn unregister(w: &mut World) -> CheckResult {
    const LIVE: [&str; 3] = ["P1", "P3", "F"];
    let id = w.id.take().ok_or("no file uprobe")?;
    FILES.unregister(&ENGINE, id).map_err(|e| e.to_string())?;
    let sems = semaphores(w, &LIVE)?;
    ensure_eq!(sems, vec![0; 3], "semaphores after unregister");
    ensure!(FILES.placements::<8>(id).is_empty(), "placements left");
    let (site, t) = (usdt::usdt_work(), testfns::func("tf_alu"));
    for n in LIVE {
        let c = w.kid(n)?;
        ensure!(
            peek(c, site, SITE_LEN)? == own(site, SITE_LEN),
            "{n}: site differs from the original"
        );
        ensure!(
            peek(c, t.start, t.size)? == own(t.start, t.size),
            "{n}: tf_alu differs from the original"
        );
        w.run_loop(n, 2, 0)?;
    }
    ensure!(ENGINE.list::<64>().is_empty(), "probes left in the engine");
    Ok(format!(
        "semaphores {sems:?}, the site's {SITE_LEN} bytes and tf_alu original in P1, P3, F"
    ))
}

fn all_exit(w: &mut World) -> CheckResult {
    let mut pids = Vec::new();
    for n in ["F", "P1", "P3"] {
        pids.push(exit_child(w, n)?);
    }
    ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and pages");
    ensure!(ENGINE.list::<64>().is_empty(), "probes left");
    Ok(format!("{pids:?} exited and released"))
}

/// A check on the shared [`World`].
type Check = fn(&mut World) -> CheckResult;

/// The checks, in order (each builds on the ones before).
const CHECKS: &[(&str, Check)] = &[
    (
        "usdt: the site's .note.stapsdt note read from the tracer's file, offsets from its program headers match /proc/self/maps",
        note_and_file,
    ),
    (
        "uprobe_events by file: an event on the binary two running children map (dev/inode from /proc/PID/maps), semaphores up",
        two_children,
    ),
    (
        "a third child started later: the event placed at its mappings, its semaphore up",
        third_child,
    ),
    (
        "fork: the file uprobe follows into the fork (semaphore copied), an address-space uprobe does not",
        fork_follows,
    ),
    (
        "the trace: every hit of the four processes read back from the ring in Linux's format",
        trace,
    ),
    (
        "a child exits: release_space and space_released forget its placement",
        child_exits,
    ),
    (
        "disable: semaphores down to 0 and no hits in every process; enable: up to 1 again",
        disable_enable,
    ),
    (
        "unregister: semaphores 0, text restored byte for byte in every child",
        unregister,
    ),
    (
        "the children exit: nothing left in the engine",
        all_exit,
    ),
];

/// Run the checks of the file event.
pub fn run(r: &mut Report) {
    let mut w = World::default();
    for (name, check) in CHECKS {
        r.check(name, || check(&mut w));
    }
}
