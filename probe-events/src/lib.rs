//! Linux-style probe events for the probe engine, without allocation.
//!
//! * [`def`]: `kprobe_events` / `uprobe_events` definitions, parsed with fixed
//!   capacities into an [`EventDef`], errors as Linux reports them
//!   ([`ParseError`]: reason and position), printed back normalised.
//! * [`regs`]: the `%REG` names ([`RegisterNames`], whose impls come from the
//!   hal crates).
//! * [`fetch`]: evaluating fetch arguments against a [`probe_hal::Registers`]
//!   frame and fault-safe memory ([`FetchEnv`]) into a [`Record`].
//! * [`ring`]: a per-CPU lock-free ring buffer in memory the kernel provides.
//! * [`format`]: Linux's trace line, `kprobe_events` and `kprobe_profile`.
//! * [`table`]: the defined events.
//! * [`live`]: an event as a handler object attached to a live probe.
//!
//! Reference: `Documentation/trace/kprobetrace.rst` and `uprobetracer.rst` of
//! torvalds/linux at commit `010e85f9e47c6a92740b7d73e0fca8f792573582`; see
//! the crate README for what is left out.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod def;
pub mod error;
pub mod fetch;
pub mod format;
pub mod live;
pub mod regs;
pub mod ring;
pub mod table;

pub use def::{parse, Command, EventDef, FetchArg, Flavor, Point};
pub use error::{ParseError, Reason};
pub use fetch::{fetch_all, Fault, FetchEnv, Record, Value};
pub use format::{write_trace_line, LineStyle, SymInfo, Symbolizer};
pub use live::{register_probe, EventHandler, EventSink, ServicesSymbols};
pub use regs::{RegRef, RegisterNames};
pub use ring::{CpuRing, FullMode, RingBuffer};
pub use table::{Applied, EventTable};
