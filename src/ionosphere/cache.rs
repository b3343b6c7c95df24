//! The profile cache's version: every change to profiles (train, enable, disable) bumps it,
//! and the matcher drops its per-metric profile cache when it sees a new version. A
//! process-wide counter (not an actor): the webapp writes profiles directly through
//! `db::ionosphere`, and the matcher must notice without a message round trip.

use std::sync::atomic::{AtomicU64, Ordering};

static VERSION: AtomicU64 = AtomicU64::new(0);

/// Profiles changed: cached profiles are stale.
pub fn changed() {
    VERSION.fetch_add(1, Ordering::AcqRel);
}

/// The current version.
pub fn version() -> u64 {
    VERSION.load(Ordering::Acquire)
}
