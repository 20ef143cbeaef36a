//! Fetching arguments from a frame and memory, recording through the ring
//! buffer, and printing Linux's trace lines.

use probe_events::def::{Flavor, Point};
use probe_events::fetch::{fetch_all, flags, Fault, FetchEnv, Record, Value, COMM_LEN};
use probe_events::format::{write_trace_line, LineStyle, SymInfo, Symbolizer};
use probe_events::regs::RegRef;
use probe_events::{parse, Command, CpuRing, EventDef, FullMode, RegisterNames, RingBuffer};
use probe_hal::{CallAbi, Registers};
use probe_hal_x86_64::RegNames as X86_64Names;

static ABI: CallAbi = CallAbi {
    args: &[7, 6, 2, 1, 8, 9],
    ret: [0, 2],
};

#[derive(Default)]
struct Frame {
    gpr: [usize; 16],
    pc: usize,
    flags: usize,
}

impl Registers for Frame {
    fn pc(&self) -> usize {
        self.pc
    }
    fn set_pc(&mut self, pc: usize) {
        self.pc = pc
    }
    fn sp(&self) -> usize {
        self.gpr[4]
    }
    fn set_sp(&mut self, sp: usize) {
        self.gpr[4] = sp
    }
    fn gpr(&self, n: usize) -> usize {
        self.gpr[n]
    }
    fn set_gpr(&mut self, n: usize, v: usize) {
        self.gpr[n] = v
    }
    fn call_abi(&self) -> &'static CallAbi {
        &ABI
    }
    fn flags(&self) -> usize {
        self.flags
    }
}

/// Memory: one readable region; everything else faults.
struct Mem {
    base: usize,
    bytes: Vec<u8>,
    comm: Option<&'static str>,
}

impl Mem {
    fn put(&mut self, addr: usize, b: &[u8]) {
        let o = addr - self.base;
        self.bytes[o..o + b.len()].copy_from_slice(b);
    }
}

impl FetchEnv for Mem {
    fn read(&self, addr: usize, buf: &mut [u8], _user: bool) -> Result<(), Fault> {
        let o = addr.checked_sub(self.base).ok_or(Fault)?;
        let src = self.bytes.get(o..o + buf.len()).ok_or(Fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn symbol_addr(&self, name: &str) -> Option<usize> {
        (name == "jiffies").then_some(0x1000)
    }
    fn comm(&self) -> Option<[u8; COMM_LEN]> {
        let mut c = [0; COMM_LEN];
        let s = self.comm?;
        c[..s.len()].copy_from_slice(s.as_bytes());
        Some(c)
    }
}

struct Syms;
const SYMS: &[(&str, usize, usize)] = &[
    ("do_sys_open", 0xffff_0000, 0xd6),
    ("sys_openat", 0xffff_1000, 0xe),
    ("sys_open", 0xffff_2000, 0x1d),
    ("init_task", 0xffff_3000, 0x100),
];
impl Symbolizer for Syms {
    fn lookup(&self, addr: usize) -> Option<SymInfo<'_>> {
        SYMS.iter()
            .find(|&&(_, a, s)| (a..a + s).contains(&addr))
            .map(|&(name, a, size)| SymInfo {
                name,
                offset: addr - a,
                size,
            })
    }
}

struct X86_32;
impl RegisterNames for X86_32 {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        X86_64Names.lookup(name)
    }
    fn pointer_bytes(&self) -> usize {
        4
    }
}

fn def(line: &str, flavor: Flavor, names: &dyn RegisterNames) -> EventDef {
    match parse(line, flavor, names) {
        Ok(Command::Define(d)) => d,
        other => panic!("{line}: {other:?}"),
    }
}

fn mem() -> Mem {
    Mem {
        base: 0x1000,
        bytes: vec![0; 0x1000],
        comm: Some("cat"),
    }
}

fn line(d: &EventDef, r: &Record, style: LineStyle) -> String {
    let mut s = String::new();
    write_trace_line(&mut s, d, r, &Syms, style).unwrap();
    s
}

/// Fetch, then carry the record through a ring buffer.
fn hit(
    d: &EventDef,
    names: &dyn RegisterNames,
    regs: &Frame,
    env: &Mem,
    mut rec: Record,
) -> Record {
    fetch_all(d, regs, names, env, &mut rec);
    let rings: [CpuRing<4, 64>; 1] = [CpuRing::new()];
    let rb = RingBuffer::new(&rings, FullMode::Overwrite);
    let mut buf = [0u64; 64];
    let n = rec.encode(&mut buf).unwrap();
    assert!(rb.write(0, &buf[..n]));
    let mut out = [0u64; 64];
    let len = rb.read(0, &mut out).unwrap();
    let back = Record::decode(&out[..len]).unwrap();
    assert_eq!(back, rec);
    back
}

#[test]
fn kprobetrace_sample_lines() {
    let p = def(
        "p:myprobe do_sys_open dfd=%ax filename=%dx flags=%cx mode=+4($stack)",
        Flavor::Kprobe,
        &X86_64Names,
    );
    let mut f = Frame::default();
    f.gpr[0] = 3;
    f.gpr[2] = 0x7fff_d1ec_4440;
    f.gpr[1] = 0x8000;
    f.gpr[4] = 0x1800;
    let env = Mem {
        comm: None,
        ..mem()
    };
    let base = Record {
        cpu: 1,
        pid: Some(1447),
        timestamp_ns: Some(1_038_282_286_875_000),
        ip: 0xffff_0000,
        ..Default::default()
    };
    let r = hit(&p, &X86_64Names, &f, &env, base.clone());
    assert_eq!(
        line(&p, &r, LineStyle::Legacy),
        "           <...>-1447  [001] 1038282.286875: myprobe: (do_sys_open+0x0/0xd6) dfd=3 filename=7fffd1ec4440 flags=8000 mode=0"
    );
    f.gpr[0] = 0xffff_ff9c;
    f.gpr[2] = 0x40413c;
    let mut env = env;
    env.put(0x1804, &0x1b6u64.to_ne_bytes());
    let r = hit(
        &p,
        &X86_64Names,
        &f,
        &env,
        Record {
            timestamp_ns: Some(1_038_282_286_885_000),
            ..base.clone()
        },
    );
    assert_eq!(
        line(&p, &r, LineStyle::Legacy),
        "           <...>-1447  [001] 1038282.286885: myprobe: (do_sys_open+0x0/0xd6) dfd=ffffff9c filename=40413c flags=8000 mode=1b6"
    );
    // The sample's return lines name the argument after its text, as Linux
    // did before unnamed arguments became `argN`.
    let mut rp = def(
        "r:myretprobe do_sys_open $retval",
        Flavor::Kprobe,
        &X86_64Names,
    );
    rp.args[0].name = "$retval".try_into().unwrap();
    f.gpr[0] = (-2i64) as usize;
    let rr = Record {
        timestamp_ns: Some(1_038_282_286_878_000),
        ip: 0xffff_100c,
        func: 0xffff_0000,
        ..base.clone()
    };
    let r = hit(&rp, &X86_64Names, &f, &env, rr);
    assert_eq!(
        line(&rp, &r, LineStyle::Legacy),
        "           <...>-1447  [001] 1038282.286878: myretprobe: (sys_openat+0xc/0xe <- do_sys_open) $retval=fffffffffffffffe"
    );
    f.gpr[0] = 3;
    let rr = Record {
        timestamp_ns: Some(1_038_282_286_915_000),
        ip: 0xffff_201b,
        func: 0xffff_0000,
        ..base
    };
    let r = hit(&rp, &X86_64Names, &f, &env, rr);
    assert_eq!(
        line(&rp, &r, LineStyle::Legacy),
        "           <...>-1447  [001] 1038282.286915: myretprobe: (sys_open+0x1b/0x1d <- do_sys_open) $retval=3"
    );
}

#[test]
fn uprobetracer_sample_line() {
    let d = def(
        "p:zfree_entry /bin/zsh:0x46420 %ip %ax",
        Flavor::Uprobe,
        &X86_32,
    );
    let f = Frame {
        pc: 0x446420,
        gpr: {
            let mut g = [0; 16];
            g[0] = 0x79;
            g
        },
        ..Default::default()
    };
    let mut comm = [0u8; COMM_LEN];
    comm[..3].copy_from_slice(b"zsh");
    let rec = Record {
        cpu: 6,
        pid: Some(24842),
        comm: Some(comm),
        timestamp_ns: Some(258_544_995_456_000),
        ip: 0x446420,
        ..Default::default()
    };
    let r = hit(&d, &X86_32, &f, &mem(), rec);
    assert_eq!(
        line(&d, &r, LineStyle::Legacy),
        "             zsh-24842 [006] 258544.995456: zfree_entry: (0x446420) arg1=446420 arg2=79"
    );
    let x = def(
        "r:zfree_exit /bin/zsh:0x46420 %ip %ax",
        Flavor::Uprobe,
        &X86_32,
    );
    let f = Frame {
        pc: 0x446540,
        ..Default::default()
    };
    let rec = Record {
        cpu: 7,
        pid: Some(24842),
        comm: Some(comm),
        timestamp_ns: Some(258_545_000_270_000),
        ip: 0x446540,
        func: 0x446420,
        ..Default::default()
    };
    let r = hit(&x, &X86_32, &f, &mem(), rec);
    // The document shows two spaces after `zfree_exit:`; Linux prints one.
    assert_eq!(
        line(&x, &r, LineStyle::Legacy),
        "             zsh-24842 [007] 258545.000270: zfree_exit: (0x446540 <- 0x446420) arg1=446540 arg2=0"
    );
}

#[test]
fn modern_line_types_and_faults() {
    let d = def(
        "p:myopen do_sys_open dfd=%di path=+0(%si):string n=+0(%dx):s32 b=+0(%dx):u8 bf=+0(%dx):b4@4/32 a=+8(%dx):x16[3] c=+16(%dx):char \
         s=+24(%dx):symbol who=$comm st=$stack1 a7=$arg7 j=@jiffies:u16 imm=\\42:u32 bad=+0(%cx):string badi=+8(+0(%cx)):u64",
        Flavor::Kprobe,
        &X86_64Names,
    );
    let mut env = mem();
    env.put(0x1100, b"/etc/passwd\0");
    env.put(0x1200, &(-5i32 as u32 | 0xf0).to_ne_bytes());
    env.put(0x1208, &[1, 0, 2, 0, 0xff, 0xff]);
    env.put(0x1210, b"Q");
    env.put(0x1218, &0xffff_3010usize.to_ne_bytes());
    env.put(0x1000, &0xbeefu16.to_ne_bytes());
    env.put(0x1800 + 8, &0x77usize.to_ne_bytes()); // $stack1
    env.put(0x1800 + 8, &0x77usize.to_ne_bytes()); // x86_64: arg 7 is at sp + 8
    let mut f = Frame::default();
    f.gpr[7] = 3;
    f.gpr[6] = 0x1100;
    f.gpr[2] = 0x1200;
    f.gpr[1] = 0xdead_0000; // unmapped
    f.gpr[4] = 0x1800;
    let rec = Record {
        cpu: 2,
        pid: Some(1234),
        flags: flags::IRQS_OFF,
        timestamp_ns: Some(12_000_345_999),
        ip: 0xffff_0000,
        ..Default::default()
    };
    let r = hit(&d, &X86_64Names, &f, &env, rec);
    assert_eq!(r.values[13], Value::Fault);
    assert_eq!(
        line(&d, &r, LineStyle::Modern),
        "           <...>-1234    [002] d....    12.000345: myopen: (do_sys_open+0x0/0xd6) dfd=0x3 path=\"/etc/passwd\" n=-5 b=251 bf=15 \
         a={0x1,0x2,0xffff} c='Q' s=init_task+0x10/0x100 who=\"cat\" st=0x77 a7=0x77 j=48879 imm=42 bad=(fault) badi=(fault)"
    );
    let r0 = Record {
        pid: None,
        timestamp_ns: None,
        flags: flags::IRQS_OFF | flags::HARDIRQ | flags::NEED_RESCHED,
        preempt_count: 0x12,
        ..r.clone()
    };
    assert!(line(&d, &r0, LineStyle::Modern)
        .starts_with("          <idle>-0       [002] dnh21     0.000000: myopen: "));
    assert!(line(&d, &r0, LineStyle::ModernNoIrqInfo)
        .starts_with("          <idle>-0       [002]      0.000000: myopen: "));
    assert!(matches!(d.point, Point::Symbol { .. }));
    // Addresses that wrap around read as faults, never overflow.
    let w = def(
        "p:w f s=-8(%ax):string a=-4(%ax):u32[4] n=$arg7",
        Flavor::Kprobe,
        &X86_64Names,
    );
    let mut f = Frame::default();
    f.gpr[4] = usize::MAX - 3;
    let r = hit(&w, &X86_64Names, &f, &mem(), Record::default());
    assert_eq!(
        r.values.as_slice(),
        [Value::Fault, Value::Fault, Value::Fault]
    );
}
