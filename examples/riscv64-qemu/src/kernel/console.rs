//! The console: the virt machine's ns16550 UART at 0x1000_0000, shared by
//! both harts behind a spin lock, and a `log` backend for the engine's
//! error messages.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// Base of the UART's registers.
const UART: usize = 0x1000_0000;
/// Transmit holding register (write).
const THR: usize = 0;
/// Line status register.
const LSR: usize = 5;
/// LSR bit: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Held while one hart prints a line.
static LOCK: AtomicBool = AtomicBool::new(false);

struct Uart;

impl Uart {
    fn put(&mut self, byte: u8) {
        // SAFETY: UART..UART+8 are the ns16550's registers on the virt
        // machine, mapped for every mode by PMP; byte accesses are what the
        // device expects.
        unsafe {
            while core::ptr::read_volatile((UART + LSR) as *const u8) & LSR_THR_EMPTY == 0 {}
            core::ptr::write_volatile((UART + THR) as *mut u8, byte);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

/// Print `args` as one unit (no other hart's output in between).
pub fn print(args: fmt::Arguments<'_>) {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let _ = Uart.write_fmt(args);
    LOCK.store(false, Ordering::Release);
}

/// Print without taking the lock: for the panic and fatal-trap paths, where
/// the lock may be held by the hart that failed.
pub fn print_unlocked(args: fmt::Arguments<'_>) {
    let _ = Uart.write_fmt(args);
}

/// `println!` to the UART.
macro_rules! println {
    () => { $crate::kernel::console::print(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::kernel::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Sends the engine's `log` records to the UART.
struct UartLogger;

impl log::Log for UartLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            println!("[{}] {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: UartLogger = UartLogger;

/// Install the UART logger (once, on the boot hart).
pub fn init_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}
