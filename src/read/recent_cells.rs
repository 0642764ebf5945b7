//! Values made once and shared by the threads that need them together.
//!
//! ```text
//! decoder A ─┐                      ┌─ makes the value (fetch, decode)
//!            ├─► cell(key) ─► OnceLock ┤
//! decoder B ─┘                      └─ waits for it, then shares it
//! ```
//! Parquet decoders take row groups in turn, and two of them often want
//! the same thing at once: a remote row group's bytes (one decoder, or the
//! look-ahead, fetches them) or a column's null levels in a row group read
//! as several slices. A cell per key makes each value once; the most
//! recent `kept` cells are kept, the older ones let go (a thread still
//! holding one keeps its value alive).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

pub type Cell<V> = Arc<OnceLock<V>>;

pub struct RecentCells<K, V> {
    kept: usize,
    cells: Mutex<VecDeque<(K, Cell<V>)>>,
}

impl<K: PartialEq, V> RecentCells<K, V> {
    pub fn new(kept: usize) -> Self {
        RecentCells {
            kept: kept.max(1),
            cells: Mutex::new(VecDeque::new()),
        }
    }

    /// The cell of `key`, made if new (the oldest beyond `kept` is let
    /// go), and whether it was new.
    pub fn cell(&self, key: K) -> (Cell<V>, bool) {
        let mut cells = self.cells.lock().expect("cells lock");
        if let Some((_, cell)) = cells.iter().find(|(k, _)| *k == key) {
            return (cell.clone(), false);
        }
        let cell = Cell::default();
        cells.push_back((key, cell.clone()));
        if cells.len() > self.kept {
            cells.pop_front();
        }
        (cell, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn threads_asking_together_make_the_value_once() {
        let cells: RecentCells<usize, usize> = RecentCells::new(4);
        let made = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let (cell, _) = cells.cell(7);
                    let v = cell.get_or_init(|| {
                        made.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        49
                    });
                    assert_eq!(*v, 49);
                });
            }
        });
        assert_eq!(made.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn only_the_most_recent_are_kept() {
        let cells: RecentCells<usize, usize> = RecentCells::new(2);
        let (first, new) = cells.cell(1);
        assert!(new);
        first.set(10).unwrap();
        assert!(!cells.cell(1).1);
        cells.cell(2);
        cells.cell(3); // lets 1 go
        let (again, new) = cells.cell(1);
        assert!(new && again.get().is_none());
        // The holder of the old cell still has its value.
        assert_eq!(first.get(), Some(&10));
    }
}
