//! Evaluating fetch arguments at a hit, and the record they make.

use heapless::Vec;
use probe_hal::Registers;

use crate::def::{Base, EventDef, FetchArg, TypeKind, MAX_ARGS, MAX_ARRAY};
use crate::regs::RegisterNames;

/// Bytes kept of a fetched string (including none for the NUL).
pub const MAX_STRING: usize = 64;
/// Bytes of a task name (Linux's TASK_COMM_LEN).
pub const COMM_LEN: usize = 16;

/// A memory access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

/// What fetch arguments read through: fault-safe memory and a few facts about
/// the current task. A kernel implements it over its services.
pub trait FetchEnv {
    /// Copy `buf.len()` bytes from `addr`, kernel memory or (`user`) the
    /// current task's user memory. A fault returns `Err`, never crashes.
    fn read(&self, addr: usize, buf: &mut [u8], user: bool) -> Result<(), Fault>;
    /// The address of a data symbol (`@SYM`).
    fn symbol_addr(&self, _name: &str) -> Option<usize> {
        None
    }
    /// The address where a file offset of the probed binary is mapped in the
    /// current task (`@+OFFSET`).
    fn file_offset_addr(&self, _offset: u64) -> Option<usize> {
        None
    }
    /// The current task's name (`$comm`), NUL-padded.
    fn comm(&self) -> Option<[u8; COMM_LEN]> {
        None
    }
}

/// One fetched value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer (already cut to its type's size, not sign-extended).
    Int(u64),
    /// String bytes (without the NUL).
    Str(Vec<u8, MAX_STRING>),
    /// Array elements.
    Array(Vec<u64, MAX_ARRAY>),
    /// A memory read faulted (printed `(fault)`).
    Fault,
}

/// Linux's `TRACE_FLAG_*` bits of the flags column.
pub mod flags {
    /// Interrupts were off.
    pub const IRQS_OFF: u8 = 0x01;
    /// `need_resched` was set.
    pub const NEED_RESCHED: u8 = 0x04;
    /// In a hard interrupt.
    pub const HARDIRQ: u8 = 0x08;
    /// In a soft interrupt.
    pub const SOFTIRQ: u8 = 0x10;
    /// A preemption was pending.
    pub const PREEMPT_RESCHED: u8 = 0x20;
    /// In an NMI.
    pub const NMI: u8 = 0x40;
}

/// One event hit, as the ring buffer carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Index of the event in its table.
    pub event: u16,
    /// CPU.
    pub cpu: u16,
    /// [`flags`] bits.
    pub flags: u8,
    /// Preemption count (low byte).
    pub preempt_count: u8,
    /// Task id, if the kernel gives one.
    pub pid: Option<u32>,
    /// Nanoseconds, if the kernel gives a clock.
    pub timestamp_ns: Option<u64>,
    /// Task name, if the kernel gives one.
    pub comm: Option<[u8; COMM_LEN]>,
    /// Entry events: the probed address. Return events: the return address.
    pub ip: u64,
    /// Return events: the probed function's address (0 for entry events).
    pub func: u64,
    /// The fetch arguments' values, in definition order.
    pub values: Vec<Value, MAX_ARGS>,
}

fn read_uint(env: &dyn FetchEnv, addr: usize, size: usize, user: bool) -> Result<u64, Fault> {
    let mut b = [0u8; 8];
    env.read(addr, &mut b[..size], user)?;
    Ok(match size {
        1 => b[0] as u64,
        2 => u16::from_ne_bytes([b[0], b[1]]) as u64,
        4 => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64,
        _ => u64::from_ne_bytes(b),
    })
}

fn cut(v: u64, size: usize) -> u64 {
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    }
}

fn element_size(kind: TypeKind, ptr: usize) -> usize {
    match kind {
        TypeKind::U(b) | TypeKind::S(b) | TypeKind::X(b) => b as usize,
        TypeKind::Bitfield { container, .. } => container as usize,
        TypeKind::Char => 1,
        _ => ptr,
    }
}

fn bitfield(v: u64, kind: TypeKind) -> u64 {
    match kind {
        TypeKind::Bitfield { width, offset, .. } => {
            (v >> offset) & (u64::MAX >> (64 - width as u32))
        }
        _ => v,
    }
}

/// Evaluate one argument.
pub fn fetch_arg(
    def: &EventDef,
    arg: &FetchArg,
    regs: &dyn Registers,
    names: &dyn RegisterNames,
    env: &dyn FetchEnv,
) -> Value {
    fetch_inner(def, arg, regs, names, env).unwrap_or(Value::Fault)
}

fn fetch_inner(
    def: &EventDef,
    arg: &FetchArg,
    regs: &dyn Registers,
    names: &dyn RegisterNames,
    env: &dyn FetchEnv,
) -> Result<Value, Fault> {
    let ptr = def.pointer_bytes as usize;
    let user_space = def.flavor == crate::def::Flavor::Uprobe;
    let (mut v, mut pending, mut user) = match &arg.base {
        Base::Reg(r) => (r.read(regs) as u64, false, false),
        Base::Addr(a) => (*a, true, user_space),
        Base::Symbol { name, offset } => {
            let a = env.symbol_addr(name).ok_or(Fault)?;
            ((a as u64).wrapping_add(*offset as u64), true, false)
        }
        Base::FileOffset(o) => (env.file_offset_addr(*o).ok_or(Fault)? as u64, true, true),
        Base::Stack(n) => (
            regs.sp().wrapping_add(*n as usize * ptr) as u64,
            true,
            user_space,
        ),
        Base::StackAddr => (regs.sp() as u64, false, false),
        Base::Retval => (regs.return_value() as u64, false, false),
        Base::Arg(n) => {
            let i = (*n as usize).saturating_sub(1);
            match regs.arg(i) {
                Some(v) => (v as u64, false, false),
                None => {
                    let on_stack = i.saturating_sub(regs.call_abi().args.len());
                    let a = regs
                        .sp()
                        .wrapping_add(names.stack_args_offset())
                        .wrapping_add(on_stack * ptr);
                    (a as u64, true, user_space)
                }
            }
        }
        Base::Imm(i) => (*i, false, false),
        Base::Comm => {
            let c = env.comm().ok_or(Fault)?;
            let mut s = Vec::new();
            for &b in c.iter().take_while(|&&b| b != 0) {
                let _ = s.push(b);
            }
            return Ok(Value::Str(s));
        }
    };
    for d in &arg.derefs {
        if pending {
            v = read_uint(env, v as usize, ptr, user)?;
        }
        v = v.wrapping_add(d.offset as u64);
        pending = true;
        user = d.user || user_space;
    }
    let kind = def.effective_kind(arg);
    let addr = v as usize;
    match kind {
        TypeKind::String | TypeKind::UString => {
            let user = user || kind == TypeKind::UString;
            let mut s = Vec::new();
            let mut b = [0u8; 1];
            while s.len() < MAX_STRING {
                env.read(addr.wrapping_add(s.len()), &mut b, user)?;
                if b[0] == 0 {
                    break;
                }
                let _ = s.push(b[0]);
            }
            Ok(Value::Str(s))
        }
        _ => {
            let size = element_size(kind, ptr);
            if let Some(n) = arg.ty.array {
                let mut a = Vec::new();
                for i in 0..n as usize {
                    let e = read_uint(env, addr.wrapping_add(i * size), size, user)?;
                    let _ = a.push(bitfield(e, kind));
                }
                return Ok(Value::Array(a));
            }
            let raw = if pending {
                read_uint(env, addr, size, user)?
            } else {
                cut(v, size)
            };
            Ok(Value::Int(bitfield(raw, kind)))
        }
    }
}

/// Evaluate every argument of `def` into `record.values`.
pub fn fetch_all(
    def: &EventDef,
    regs: &dyn Registers,
    names: &dyn RegisterNames,
    env: &dyn FetchEnv,
    record: &mut Record,
) {
    record.values.clear();
    for a in &def.args {
        let _ = record.values.push(fetch_arg(def, a, regs, names, env));
    }
}

// ---------------------------------------------------------------- encoding

const TAG_INT: u64 = 1;
const TAG_STR: u64 = 2;
const TAG_ARRAY: u64 = 3;
const TAG_FAULT: u64 = 4;

/// Words of the fixed part of an encoded record.
const HEADER_WORDS: usize = 7;

struct Out<'a> {
    buf: &'a mut [u64],
    n: usize,
}

impl Out<'_> {
    fn push(&mut self, v: u64) -> Option<()> {
        *self.buf.get_mut(self.n)? = v;
        self.n += 1;
        Some(())
    }
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        for chunk in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.push(u64::from_le_bytes(w))?;
        }
        Some(())
    }
}

impl Record {
    /// Encode into `buf`; the number of words, or `None` if it does not fit.
    pub fn encode(&self, buf: &mut [u64]) -> Option<usize> {
        let mut o = Out { buf, n: 0 };
        let present = self.pid.is_some() as u64
            | (self.timestamp_ns.is_some() as u64) << 1
            | (self.comm.is_some() as u64) << 2;
        o.push(
            self.event as u64
                | (self.cpu as u64) << 16
                | (self.flags as u64) << 32
                | (self.preempt_count as u64) << 40
                | (self.values.len() as u64) << 48
                | present << 56,
        )?;
        o.push(self.pid.unwrap_or(0) as u64)?;
        o.push(self.timestamp_ns.unwrap_or(0))?;
        o.bytes(&self.comm.unwrap_or([0; COMM_LEN]))?;
        o.push(self.ip)?;
        o.push(self.func)?;
        for v in &self.values {
            match v {
                Value::Int(i) => {
                    o.push(TAG_INT)?;
                    o.push(*i)?;
                }
                Value::Str(s) => {
                    o.push(TAG_STR | (s.len() as u64) << 8)?;
                    o.bytes(s)?;
                }
                Value::Array(a) => {
                    o.push(TAG_ARRAY | (a.len() as u64) << 8)?;
                    for &e in a {
                        o.push(e)?;
                    }
                }
                Value::Fault => o.push(TAG_FAULT)?,
            }
        }
        Some(o.n)
    }

    /// Decode what [`Record::encode`] wrote; `None` if malformed.
    pub fn decode(words: &[u64]) -> Option<Record> {
        if words.len() < HEADER_WORDS {
            return None;
        }
        let h = words[0];
        let present = h >> 56;
        let mut comm = [0u8; COMM_LEN];
        comm[..8].copy_from_slice(&words[3].to_le_bytes());
        comm[8..].copy_from_slice(&words[4].to_le_bytes());
        let mut r = Record {
            event: h as u16,
            cpu: (h >> 16) as u16,
            flags: (h >> 32) as u8,
            preempt_count: (h >> 40) as u8,
            pid: (present & 1 != 0).then_some(words[1] as u32),
            timestamp_ns: (present & 2 != 0).then_some(words[2]),
            comm: (present & 4 != 0).then_some(comm),
            ip: words[5],
            func: words[6],
            values: Vec::new(),
        };
        let count = ((h >> 48) & 0xff) as usize;
        let mut i = HEADER_WORDS;
        for _ in 0..count {
            let tag = *words.get(i)?;
            i += 1;
            let len = (tag >> 8) as usize;
            let v = match tag & 0xff {
                TAG_INT => {
                    i += 1;
                    Value::Int(*words.get(i - 1)?)
                }
                TAG_STR => {
                    let n = len.div_ceil(8);
                    let mut s = Vec::new();
                    for w in words.get(i..i + n)? {
                        for b in w.to_le_bytes() {
                            if s.len() < len {
                                s.push(b).ok()?;
                            }
                        }
                    }
                    i += n;
                    Value::Str(s)
                }
                TAG_ARRAY => {
                    let mut a = Vec::new();
                    for &e in words.get(i..i + len)? {
                        a.push(e).ok()?;
                    }
                    i += len;
                    Value::Array(a)
                }
                TAG_FAULT => Value::Fault,
                _ => return None,
            };
            r.values.push(v).ok()?;
        }
        Some(r)
    }
}
