//! The main demonstration on the host: the Toy ISA (an ISA probe-core has
//! never heard of) runs real code in its interpreter while kprobes,
//! kretprobes and uprobes fire, and prints what each probe saw.

use std::sync::atomic::{AtomicUsize, Ordering};

use custom_arch::isa::asm::*;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::World;
use custom_arch::{leak_engine, ToyEngine};
use probe_core::{EntryAction, Kprobe, Kretprobe, PreAction, ProbeContext, Space};
use probe_hal::Registers;

const ADD3: usize = 0x1000; // r1 = r1 + r2 + 3
const SUM: usize = 0x1100; // r1 = 0 + 1 + … + r1, recursively
const STUB: usize = 0x3000;

static HITS: AtomicUsize = AtomicUsize::new(0);

fn show_pre(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::Relaxed);
    println!(
        "  kprobe {:#x} pre : r1={} r2={} (cpu {}, {:?})",
        ctx.addr,
        regs.gpr(1),
        regs.gpr(2),
        ctx.cpu,
        ctx.space
    );
    PreAction::Continue
}

fn show_post(ctx: &ProbeContext, regs: &mut dyn Registers) {
    println!("  kprobe {:#x} post: r1={}", ctx.addr, regs.gpr(1));
}

fn sum_entry(_ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let n = regs.arg(0).unwrap_or(0) as u64;
    data[..8].copy_from_slice(&n.to_le_bytes());
    EntryAction::Track
}

fn sum_return(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let n = u64::from_le_bytes(data[..8].try_into().unwrap());
    println!(
        "  kretprobe: sum({n}) returned {} to {:#x}",
        regs.return_value(),
        ctx.return_address
    );
}

fn run_call(w: &World, e: &ToyEngine, space: Space, task: usize, func: usize, args: &[u64]) -> u64 {
    let stub = STUB + task * 0x10;
    w.load(
        space,
        stub,
        &[call((func as i64 - stub as i64) as i16).as_slice(), &halt()].concat(),
    );
    let mut cpu = Cpu::new(0, task, space, stub, 0xf000 - task * 0x400);
    for (i, a) in args.iter().enumerate() {
        cpu.regs.r[i + 1] = *a;
    }
    assert_eq!(cpu.run(w, e, 100_000), Stop::Halted);
    cpu.regs.r[1]
}

fn main() {
    let world = World::leak(&[]);
    let engine: &'static ToyEngine = leak_engine(world);
    let add3 = [add(1, 2).as_slice(), &addi(1, 1, 3), &ret()].concat();
    let sum = [
        li(2, 0).as_slice(),
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
    ]
    .concat();
    for space in [Space::Kernel, Space::User(1)] {
        world.load(space, ADD3, &add3);
        world.load(space, SUM, &sum);
    }
    world.add_symbol("add3", ADD3, add3.len());
    world.add_symbol("sum", SUM, sum.len());
    world.set_task_space(1, 1);
    let orig = world.peek(Space::Kernel, ADD3, add3.len());

    println!(
        "probe-core on the Toy ISA ({} instructions in its decision table)",
        custom_arch::arch::DECISIONS.len()
    );
    println!("\n1. kprobes on every instruction of add3 (pre + post handlers)");
    let ids: Vec<_> = [0, 2, 6]
        .iter()
        .map(|off| {
            engine
                .register_kprobe(&Kprobe::symbol("add3", *off).pre(show_pre).post(show_post))
                .expect("probe add3")
        })
        .collect();
    println!(
        "  add3(10, 20) = {}",
        run_call(world, engine, Space::Kernel, 0, ADD3, &[10, 20])
    );

    println!("\n2. a kretprobe on the recursive sum");
    let rid = engine
        .register_kretprobe(
            &Kretprobe::symbol("sum")
                .entry(sum_entry)
                .ret(sum_return)
                .data_size(8),
        )
        .expect("kretprobe sum");
    println!(
        "  sum(4) = {}",
        run_call(world, engine, Space::Kernel, 0, SUM, &[4])
    );

    println!("\n3. a uprobe in user address space 1 (the kernel's copy stays quiet)");
    let uid = engine
        .register_kprobe(&Kprobe::at(ADD3 + 2).in_space(Space::User(1)).pre(show_pre))
        .expect("uprobe");
    println!(
        "  user add3(1, 2) = {}",
        run_call(world, engine, Space::User(1), 1, ADD3, &[1, 2])
    );

    println!("\n4. refused, with a reason");
    world.load(Space::Kernel, 0x2000, &brk(0));
    for (what, r) in [
        (
            "inside an instruction",
            engine.register_kprobe(&Kprobe::symbol("add3", 4)),
        ),
        ("a breakpoint", engine.register_kprobe(&Kprobe::at(0x2000))),
        (
            "return probe off entry",
            engine.register_kretprobe(&Kretprobe::at(SUM + 4)),
        ),
    ] {
        println!("  {what}: {}", r.expect_err("must be refused"));
    }

    println!("\n5. listing");
    for p in engine.list::<16>() {
        println!(
            "  {:?} {:#x} {:?} enabled={} hits={} missed={}",
            p.kind, p.addr, p.space, p.enabled, p.hits, p.missed
        );
    }

    engine.unregister_batch(&ids).expect("unregister");
    engine.unregister(rid).expect("unregister");
    engine.unregister(uid).expect("unregister");
    let restored = world.peek(Space::Kernel, ADD3, add3.len()) == orig;
    println!(
        "\n6. unregistered: original bytes back: {restored}; slots in use {:?}; handler runs {}",
        engine.slot_usage(),
        HITS.load(Ordering::Relaxed)
    );
    assert!(restored);
}
