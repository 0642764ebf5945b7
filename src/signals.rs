//! SIGINT/SIGTERM: stop cleanly between chunks, never write `_SUCCESS`.
//!
//! The handler only sets a flag; the readers check it per chunk and unwind
//! with `PrepError::Interrupted`, so temp files and half-written shards are
//! removed by their guards on the way out.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn install() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Registration fails only for forbidden signals; these two are allowed.
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}
