//! The serial console: the PL011 UART of the `virt` machine, a lock that
//! a CPU may take again from a trap (so a panic while printing still
//! prints), `print!`/`println!`, and a `log` backend for the engine's
//! messages.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::sysreg;

/// The PL011's data register and flag register.
const UART_DR: usize = 0x0900_0000;
const UART_FR: usize = 0x0900_0018;
/// FR.TXFF: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;

fn put_byte(b: u8) {
    // SAFETY: the PL011's registers at their fixed `virt` address, mapped
    // as device memory; 32-bit accesses are what the device expects.
    unsafe {
        while core::ptr::read_volatile(UART_FR as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile(UART_DR as *mut u32, b as u32);
    }
}

/// The CPU holding the console (its id + 1; 0: free) and how often.
static OWNER: AtomicUsize = AtomicUsize::new(0);
static DEPTH: AtomicUsize = AtomicUsize::new(0);

/// Holds the console for one CPU; a trap on the same CPU may take it again.
struct Guard;

impl Guard {
    fn take() -> Self {
        let me = sysreg::cpu_id() + 1;
        if OWNER.load(Ordering::Acquire) != me {
            while OWNER
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
        }
        DEPTH.fetch_add(1, Ordering::Relaxed);
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if DEPTH.fetch_sub(1, Ordering::Relaxed) == 1 {
            OWNER.store(0, Ordering::Release);
        }
    }
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put_byte(b'\r');
            }
            put_byte(b);
        }
        Ok(())
    }
}

/// Print formatted text (used by the macros).
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let _g = Guard::take();
    let _ = Uart.write_fmt(args);
}

/// Print to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Print a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints the engine's `log` records.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            print_fmt(format_args!("[{}] {}\n", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Route `log` records to the console (once, at boot).
pub fn init_log() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}
