//! The kernel: start-up, trap handling, the services the engine needs, and
//! the checks.
//!
//! Boot: every hart enters `boot` in M-mode; hart 0 continues, hart 1 stays
//! parked until the two-hart checks release it. Both reach [`s_main`] in
//! S-mode, install the trap vector ([`trap`]) and enable the FPU. Hart 1
//! then serves its mailbox and runs jobs ([`smp`]); hart 0 sets up the
//! services ([`services`]), installs the engine as the return hook of the
//! backend's asm trampoline and as the opt hook of its detours (with jump
//! optimisation off but in the optimised checks), runs the checks ([`checks`]), prints
//! `N passed, M failed` and exits through the sifive_test device ([`exit`]).

#[macro_use]
mod console;
mod boot;
mod checks;
mod clock;
mod exit;
mod fixup;
mod layout;
mod lock;
mod services;
mod slots;
mod smp;
mod symbols;
mod tasks;
mod trap;
mod user;

use services::ENGINE;

/// S-mode entry of every hart (from `boot::m_setup`).
extern "C" fn s_main(hart: usize) -> ! {
    trap::install();
    trap::enable_fpu();
    if hart != 0 {
        smp::secondary_main();
    }
    console::init_logger();
    ENGINE.services().init();
    if probe_hal::rethook::set_return_hook(&ENGINE).is_err() {
        panic!("return hook installed twice");
    }
    // Detours call back into the engine; optimisation stays off except in
    // the optimised checks (the others count breakpoint traps and steps).
    if probe_hal::opthook::set_opt_hook(&ENGINE).is_err() {
        panic!("opt hook installed twice");
    }
    if ENGINE.set_optimization(false).is_err() {
        panic!("switching jump optimisation off failed");
    }
    println!("riscv64-qemu: probe engine on qemu-system-riscv64 virt, S-mode kernel, U-mode tasks");
    let start = clock::now();
    checks::run_all();
    let (passed, failed) = checks::report::totals();
    println!("({} ms)", clock::ms_since(start));
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        exit::pass()
    } else {
        exit::fail(1)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print_unlocked(format_args!("\nPANIC: {info}\n"));
    exit::fail(0x50)
}
