//! What the handlers of both engines do: count their calls.

use std::sync::atomic::{AtomicU64, Ordering};

static PRE: AtomicU64 = AtomicU64::new(0);
static POST: AtomicU64 = AtomicU64::new(0);

/// The pre-handler ran.
pub fn pre() {
    PRE.fetch_add(1, Ordering::Relaxed);
}

/// The post-handler ran.
pub fn post() {
    POST.fetch_add(1, Ordering::Relaxed);
}

/// Pre- and post-handler calls so far.
pub fn calls() -> (u64, u64) {
    (PRE.load(Ordering::Relaxed), POST.load(Ordering::Relaxed))
}
