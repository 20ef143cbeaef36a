//! Output on the first serial port (COM1, a 16550 at I/O port 0x3f8), which
//! `-serial stdio` connects to QEMU's standard output.

use core::fmt;

use crate::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
/// Line status register: bit 5 = transmit holding register empty.
const LSR: u16 = COM1 + 5;
const THR_EMPTY: u8 = 1 << 5;

/// The serial port as a `fmt::Write` sink.
pub struct Com1;

impl Com1 {
    /// 115200 baud, 8 data bits, no parity, one stop bit, FIFO on.
    pub fn init() {
        // SAFETY: the standard 16550 initialisation sequence on COM1's
        // registers (interrupt enable, divisor latch, line and FIFO control).
        unsafe {
            outb(COM1 + 1, 0x00); // no interrupts
            outb(COM1 + 3, 0x80); // divisor latch access
            outb(COM1, 0x01); // divisor 1: 115200 baud
            outb(COM1 + 1, 0x00);
            outb(COM1 + 3, 0x03); // 8N1
            outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
            outb(COM1 + 4, 0x03); // DTR, RTS
        }
    }

    fn put(byte: u8) {
        // SAFETY: reading the line status and writing the transmit holding
        // register of COM1, as the 16550 protocol says.
        unsafe {
            while inb(LSR) & THR_EMPTY == 0 {}
            outb(COM1, byte);
        }
    }
}

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            Com1::put(b);
        }
        Ok(())
    }
}

/// Print a line on COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::serial::Com1, $($arg)*);
    }};
}
