//! A dependency's panic on bad input, turned into an error.
//!
//! polars asserts on some malformed Parquet pages instead of returning an
//! error. [`caught`] runs such a call and gives back the panic's message as
//! an `Err`, so the caller can report the file and rows as bad data (exit
//! 3) instead of the process dying with a backtrace. While a call runs
//! under it, the panic hook ([`install_hook`], set on first use) prints
//! nothing for that thread, nor for polars' own pool threads (`polars-N`),
//! whose panics rayon hands back to the caller; every other panic is
//! printed as usual.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

thread_local! {
    /// This thread is inside [`caught`]: its panics are reported as errors.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Calls inside [`caught`] now, on any thread.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether a panic on this thread is one [`caught`] reports.
fn quiet() -> bool {
    CATCHING.with(Cell::get)
        || (ACTIVE.load(Ordering::SeqCst) > 0
            && std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("polars")))
}

/// Makes the panic hook quiet for threads inside [`caught`]; idempotent.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let printing = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !quiet() {
                printing(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err(its message)`.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CATCHING.with(|c| c.replace(true));
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(f));
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder stopped on malformed data".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        assert_eq!(caught(|| 7), Ok(7));
        let got = caught(|| -> u32 { panic!("page too short: {}", 3) });
        assert_eq!(got, Err("page too short: 3".to_string()));
        let got = caught(|| -> u32 { std::panic::panic_any(5u8) });
        assert_eq!(
            got,
            Err("the decoder stopped on malformed data".to_string())
        );
        // Nested: the inner one restores the outer state.
        let got = caught(|| caught(|| -> u8 { panic!("inner") }).unwrap_err());
        assert_eq!(got, Ok("inner".to_string()));
        assert!(!CATCHING.with(Cell::get));
    }
}
