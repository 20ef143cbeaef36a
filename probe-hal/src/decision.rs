//! What a backend decides about one instruction, and the slot it builds.

/// The privilege level of the probed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecMode {
    /// Kernel text (kprobe, kretprobe).
    Kernel,
    /// A user address space (uprobe, uretprobe).
    User,
}

/// How a probed instruction is executed after the handlers ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// The backend emulates it on the trap frame ([`crate::Arch::simulate`]);
    /// no slot is needed. Used for instructions that read or write the pc.
    Simulate,
    /// A copy (relocated if needed) runs in an out-of-line slot.
    StepOutOfLine {
        /// The slot may end with a jump back instead of a trap ("boost"):
        /// true when nothing needs fixing after the copy ran.
        boostable: bool,
    },
}

/// The backend's verdict on an instruction it accepts. A refusal is an
/// `Err(ProbeError)` with [`crate::ProbeErrorKind::Refused`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<I> {
    /// Length of the instruction in bytes.
    pub len: usize,
    /// Simulate or step out of line.
    pub handling: Handling,
    /// The backend's own decoded form, kept with the probe.
    pub insn: I,
}

/// Largest out-of-line slot any backend may ask for, in bytes.
pub const MAX_SLOT_LEN: usize = 32;

/// The bytes of one out-of-line slot, built by [`crate::Arch::build_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotImage {
    /// Slot contents; only the first `len` bytes are written.
    pub bytes: [u8; MAX_SLOT_LEN],
    /// Number of bytes used.
    pub len: usize,
    /// Offset of the end-of-step marker (a trap) within the slot, or `None`
    /// when the slot jumps back by itself (boosted).
    pub step_end: Option<usize>,
}

impl SlotImage {
    /// An empty image to append to.
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_SLOT_LEN],
            len: 0,
            step_end: None,
        }
    }

    /// Append `bytes`; returns the offset they start at.
    ///
    /// # Panics
    /// If the image would exceed [`MAX_SLOT_LEN`] (a backend bug: a backend's
    /// `SLOT_LEN` must bound what it builds).
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let at = self.len;
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        at
    }

    /// The used part of the image.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for SlotImage {
    fn default() -> Self {
        Self::new()
    }
}
