//! Probe errors as the negative errno a system call returns.

/// `-errno` of a probe error (Linux's `register_kprobe` values).
pub fn errno(e: probe_core::ProbeError) -> i32 {
    -e.kind().errno()
}
