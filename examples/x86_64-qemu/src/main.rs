//! # x86_64-qemu: the probe engine in a ring-0 kernel under QEMU
//!
//! A bare-metal x86_64 kernel that QEMU boots with `-kernel` (multiboot-1,
//! a.out kludge). It sets up a GDT, an IDT whose breakpoint entry leaves a
//! gap below the interrupted stack pointer, identity page tables with
//! read-only text, and the engine's kernel services; then it probes its own
//! assembly test functions and prints one line per check, then
//! `N passed, M failed`, and leaves QEMU through `isa-debug-exit`
//! (33 = every check passed, 35 = a check failed, 37 = crashed).
//!
//! Built for the host (as a workspace member), it is only a `main` that
//! says how to build and boot the kernel. See README.md.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_op_in_unsafe_fn)]

mod exit_code;

#[cfg(target_os = "none")]
mod ap_trampoline;
#[cfg(target_os = "none")]
mod apic;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod extable;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod handlers;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod percpu;
#[cfg(target_os = "none")]
mod probed_code;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod services;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod symbols;

/// Called by the boot code in long mode, on the boot stack, interrupts off
/// (they stay off on this CPU: it never needs to take an IPI).
#[cfg(target_os = "none")]
extern "C" fn kernel_main() -> ! {
    use exit_code::{exit, Verdict};

    // First: every trap asks the engine, which asks `cpu_id` (gs:0).
    percpu::install(0);
    serial::Com1::init();
    println!("x86_64-qemu: kprobes and kretprobes in ring 0, probe-hal-x86_64 under QEMU");
    gdt::load(0);
    idt::install();
    cpu::mask_legacy_pic();
    clock::calibrate();
    apic::enable();
    smp::init_boot_cpu();
    services::init();
    if probe_hal::rethook::set_return_hook(&services::ENGINE).is_err() {
        println!("the return hook was already installed");
        report::crashed();
        exit(Verdict::Crashed);
    }

    if probe_hal::opthook::set_opt_hook(&services::ENGINE).is_err() {
        println!("the optimised-hit hook was already installed");
        report::crashed();
        exit(Verdict::Crashed);
    }
    // The checks written for breakpoint probes count their traps: they run
    // with jump optimisation off; `checks::optimized` switches it on.
    if services::ENGINE.set_optimization(false).is_err() {
        println!("switching jump optimisation off failed");
        report::crashed();
        exit(Verdict::Crashed);
    }

    checks::run_all();

    report::summary();
    let (_, failed) = report::counts();
    exit(if failed == 0 {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    println!("panic: {info}");
    report::crashed();
    exit_code::exit(exit_code::Verdict::Crashed)
}

#[cfg(not(target_os = "none"))]
fn main() {
    use exit_code::Verdict;
    println!(
        "x86_64-qemu is a bare-metal kernel. Build and boot it with:\n\
         \n  rustup target add x86_64-unknown-none\
         \n  cargo build -p x86_64-qemu --target x86_64-unknown-none\
         \n  examples/x86_64-qemu/run.sh\n\
         \nIt leaves QEMU through `-device isa-debug-exit,iobase={:#x},iosize=0x04`; \
         QEMU's exit status: {} = every check passed, {} = a check failed, {} = crashed \
         (panic or unexpected trap); anything else (0 = triple fault, 124 = timeout) is a failure too.",
        exit_code::PORT,
        Verdict::Passed.qemu_status(),
        Verdict::Failed.qemu_status(),
        Verdict::Crashed.qemu_status(),
    );
}
