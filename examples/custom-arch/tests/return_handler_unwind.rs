//! The unwinder helpers called where they are documented to be useful:
//! from a return handler, while it holds its instance's data. Part of the
//! Miri subset (`cargo xtask test miri`): before the instance record and
//! its data were kept in separate cells, the helpers made a second
//! reference over the data the handler holds (a Stacked Borrows
//! violation under Miri).

mod common;

use std::sync::Mutex;

use common::*;
use custom_arch::arch::TRAMPOLINE;
use custom_arch::machine::Stop;
use custom_arch::world::World;
use custom_arch::ToyEngine;
use probe_core::{EntryAction, Kretprobe, ProbeContext, Space};
use probe_hal::Registers;

struct Unwinder {
    e: &'static ToyEngine<8>,
    w: &'static World,
    /// Per return: (pending frames seen, all of them unwound to their real
    /// return address, the data byte the entry handler wrote).
    seen: Mutex<Vec<(usize, bool, u8)>>,
}

fn entry_mark(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let _ = ctx;
    data[0] = regs.arg(0).unwrap() as u8;
    EntryAction::Track
}

fn ret_unwinds(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let u = ctx.data.downcast_ref::<Unwinder>().unwrap();
    // The handler writes its data before and after the helpers run: any
    // reference they made to it would be invalidated (or invalidate it).
    let mark = data[0];
    data[1] = 0xaa;
    let task = &u.w.tasks[u.w.current_task()];
    let mut frames = Vec::new();
    // SAFETY: `task` is the current task: this return handler runs on its
    // behalf.
    unsafe {
        u.e.pending_return_frames(task, |frame, trampoline, real| {
            frames.push((frame, trampoline, real))
        })
    };
    let all_unwound = frames.iter().all(|&(frame, trampoline, real)| {
        // SAFETY: as above.
        trampoline == TRAMPOLINE
            && unsafe { u.e.unwind_return_address(task, trampoline, frame) } == Some(real)
    });
    data[1] = data[1].wrapping_add(1);
    assert_eq!(data[1], 0xab);
    u.seen
        .lock()
        .unwrap()
        .push((frames.len(), all_unwound, mark));
    let _ = regs.return_value();
}

#[test]
fn unwinder_helpers_run_from_a_return_handler_that_holds_its_data() {
    let fx: Fx<8> = Fx::new();
    let u: &'static Unwinder = Box::leak(Box::new(Unwinder {
        e: fx.e,
        w: fx.w,
        seen: Mutex::new(Vec::new()),
    }));
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .entry(entry_mark)
            .ret(ret_unwinds)
            .data_size(8)
            .data(u),
    )
    .unwrap();
    // recur(3): four tracked calls (3, 2, 1, 0), returning innermost first.
    let mut cpu = fx.cpu_calling(0, 1, Space::Kernel, RECUR, &[3]);
    assert_eq!(cpu.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 6);
    let seen = u.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (i, (pending, all_unwound, mark)) in seen.iter().enumerate() {
        assert!(*all_unwound, "return {i}: {seen:?}");
        // the innermost call (argument 0) returns first
        assert_eq!(*mark as usize, i, "{seen:?}");
        // the outer calls are still pending (and perhaps this one)
        assert!(*pending >= 3 - i, "{seen:?}");
    }
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[1]), 0);
    assert_eq!(fx.e.free_instances(), 16);
}
