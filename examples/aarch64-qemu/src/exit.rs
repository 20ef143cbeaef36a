//! Leaving QEMU through semihosting (`-semihosting`): `SYS_EXIT_EXTENDED`
//! (0x20) with the pair `[ADP_Stopped_ApplicationExit, status]` makes QEMU
//! exit with `status`. The panic handler lives here too.

/// `SYS_EXIT_EXTENDED`.
const SYS_EXIT_EXTENDED: usize = 0x20;
/// `ADP_Stopped_ApplicationExit`.
const APPLICATION_EXIT: usize = 0x20026;

fn exit(status: usize) -> ! {
    let block = [APPLICATION_EXIT, status];
    // SAFETY: the semihosting call reads the two words of `block`, which
    // live on this stack until QEMU exits; nothing runs after it.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT_EXTENDED,
            in("x1") block.as_ptr(),
            options(nostack)
        );
    }
    halt()
}

/// QEMU exits with status 0.
pub fn pass() -> ! {
    exit(0)
}

/// QEMU exits with status 1.
pub fn fail() -> ! {
    exit(1)
}

/// Spin forever (a CPU with nothing to do).
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("PANIC on CPU {}: {}", crate::sysreg::cpu_id(), info);
    fail()
}
