//! Ordered work on several threads, in bounded memory.
//!
//! ```text
//! items 0 1 2 3 4 5 ...   item i ─► thread i mod n ─► result i
//!                         results handed to `consume` in item order
//! ```
//! Parquet decoding is a sequence of independent, sizable steps (row
//! groups) whose results must be used in order. One thread for them left
//! a core idle on a small machine; here `n`
//! threads take the items in turn, and each holds at most the one result it
//! finished until `consume` takes it (a rendezvous channel), so at most `n`
//! results wait, whatever the input's size.

use std::sync::mpsc::sync_channel;

use crate::error::{PrepError, Result};

/// Threads for work that should use every core (at most `cap`, at least 1,
/// never more than there are items).
pub fn threads_for(items: usize, cap: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, cap.max(1))
        .min(items.max(1))
}

/// Runs `work` on every item on `threads` threads named `name`, and
/// `consume` on each result in item order. Stops at the first error (from
/// `work`, `consume` or `check`, which runs before each result is taken);
/// the threads then stop after at most the item they were on.
pub fn in_turn<I, T>(
    name: &str,
    items: Vec<I>,
    threads: usize,
    work: &(dyn Fn(I) -> Result<T> + Sync),
    check: &dyn Fn() -> Result<()>,
    consume: &mut dyn FnMut(T) -> Result<()>,
) -> Result<()>
where
    I: Send,
    T: Send,
{
    let threads = threads.max(1);
    let count = items.len();
    let mut shares: Vec<Vec<I>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % threads].push(item);
    }
    std::thread::scope(|scope| -> Result<()> {
        let mut turns = Vec::with_capacity(threads);
        for share in shares {
            let (tx, rx) = sync_channel::<Result<T>>(0);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn_scoped(scope, move || {
                    for item in share {
                        let done = work(item);
                        let failed = done.is_err();
                        if tx.send(done).is_err() || failed {
                            return;
                        }
                    }
                })
                .map_err(|e| PrepError::io(format!("starting a {name} thread"), e))?;
            turns.push(rx);
        }
        for k in 0..count {
            check()?;
            let done = turns[k % threads]
                .recv()
                .map_err(|_| PrepError::PipelineStopped)??;
            consume(done)?;
        }
        check()
        // Leaving the scope drops the receivers: a thread blocked on a send
        // sees it fail and ends.
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_in_item_order_whatever_the_thread_count() {
        for threads in [1, 2, 3, 8] {
            let mut got = Vec::new();
            let work = |i: u64| -> Result<u64> {
                // Later items finish first on some threads.
                std::thread::sleep(std::time::Duration::from_micros((20 - i % 20) * 50));
                Ok(i * i)
            };
            in_turn(
                "t",
                (0..40).collect(),
                threads,
                &work,
                &|| Ok(()),
                &mut |v| {
                    got.push(v);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(
                got,
                (0..40u64).map(|i| i * i).collect::<Vec<_>>(),
                "{threads}"
            );
        }
    }

    #[test]
    fn the_first_error_in_order_wins_and_the_threads_stop() {
        let started = AtomicUsize::new(0);
        let work = |i: usize| -> Result<usize> {
            started.fetch_add(1, Ordering::Relaxed);
            match i {
                5 => Err(PrepError::io("item five", std::io::Error::other("bad"))),
                _ => Ok(i),
            }
        };
        let mut got = Vec::new();
        let e = in_turn("t", (0..1000).collect(), 2, &work, &|| Ok(()), &mut |v| {
            got.push(v);
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("item five"), "{e}");
        assert_eq!(got, [0, 1, 2, 3, 4]);
        // Each thread finishes at most the item it was on.
        assert!(started.load(Ordering::Relaxed) <= 10);
    }

    #[test]
    fn a_consumer_error_or_a_stop_ends_the_run() {
        let work = |i: usize| -> Result<usize> { Ok(i) };
        let e = in_turn(
            "t",
            (0..100).collect(),
            3,
            &work,
            &|| Ok(()),
            &mut |v| match v {
                7 => Err(PrepError::PipelineStopped),
                _ => Ok(()),
            },
        );
        assert!(matches!(e, Err(PrepError::PipelineStopped)));
        let seen = AtomicUsize::new(0);
        let check = || match seen.load(Ordering::Relaxed) {
            3 => Err(PrepError::Interrupted {
                signal: "test".into(),
            }),
            _ => Ok(()),
        };
        let e = in_turn("t", (0..100).collect(), 2, &work, &check, &mut |_| {
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        assert!(matches!(e, Err(PrepError::Interrupted { .. })));
        assert_eq!(seen.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn no_items_is_fine() {
        let work = |i: usize| -> Result<usize> { Ok(i) };
        in_turn("t", Vec::new(), 4, &work, &|| Ok(()), &mut |_| Ok(())).unwrap();
        assert_eq!(threads_for(0, 4), 1);
        assert!(threads_for(100, 4) <= 4);
    }
}
