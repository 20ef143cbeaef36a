//! USDT semaphores: the 16-bit counters a probed program tests before the
//! work of a probe site (Linux's `ref_ctr_offset`).

use super::host::UprobeHost;
use super::{FileId, Instance, Mapping};

/// Count the semaphore of `inst` if it is not counted yet and its offset
/// is mapped in the instance's space.
pub(super) fn count_semaphore(
    mappings: &[Mapping],
    host: &dyn UprobeHost,
    inst: &mut Instance,
    file: FileId,
    ref_ctr: Option<u64>,
) {
    if inst.counted.is_some() {
        return;
    }
    let Some(off) = ref_ctr else { return };
    let Some(addr) = mappings
        .iter()
        .filter(|m| m.space == inst.space && m.file == file)
        .find_map(|m| m.counter_addr(off))
    else {
        return;
    };
    if add_to_semaphore(host, inst.space, addr, 1) {
        inst.counted = Some(addr);
    }
}

/// Add `delta` to the 16-bit counter at `addr` (Linux's `__update_ref_ctr`
/// refuses to go below zero; so does this).
pub(super) fn add_to_semaphore(
    host: &dyn UprobeHost,
    space: usize,
    addr: usize,
    delta: i32,
) -> bool {
    let mut b = [0u8; 2];
    if !host.read(space, addr, &mut b) {
        return false;
    }
    let v = u16::from_ne_bytes(b) as i32 + delta;
    if !(0..=u16::MAX as i32).contains(&v) {
        return false;
    }
    host.write(space, addr, &(v as u16).to_ne_bytes())
}
