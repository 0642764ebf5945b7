//! The `prep` binary: sets up the memory allocator, then runs the CLI.
//!
//! Linux with glibc: glibc's malloc, told to keep the memory it frees for
//! the next allocation ([`keep_freed_memory`]). Elsewhere: mimalloc.

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    std::process::exit(prep::cli::main());
}

/// A run allocates and frees chunk-sized buffers (a few MiB to tens of MiB)
/// all the time, on several threads. With its defaults glibc's malloc maps
/// large buffers fresh and hands freed memory back to the kernel early, so
/// chunks page-fault their memory in again and again (measured before
/// mimalloc replaced it: ~40 % of a run as system time). Here buffers up to
/// 32 MiB (the most glibc allows) come from its heaps, and a heap keeps up
/// to 1 GiB of free memory for the next allocations.
///
/// mimalloc, used before, held 100–150 MiB more at the peak (a thread's
/// freed blocks wait for that thread) and returned freed pages in 64 KiB
/// pieces during the run. Where the host takes back a VM's free memory,
/// every fresh page also costs a host fault, so that peak showed as system
/// time: docs/benchmarks.md, "The allocator".
///
/// And one heap ("arena") per 4 cores, at least one, where glibc makes up
/// to 8 per core: a heap keeps what is freed into it for the threads that
/// use it, so with a dozen threads (readers, spill, encoders, writers) each
/// heap held its own free chunk-sized buffers. On the 2-core dev VM, one
/// heap took the 5M split CSV → Parquet run from 494 to 314 MiB at the
/// peak, at the same wall time (docs/benchmarks.md, session 14). Many-core
/// machines get more heaps, so threads contend less for one; not measured
/// there yet.
///
/// A parameter the user set (`MALLOC_MMAP_THRESHOLD_`, or
/// `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`; the same for the trim
/// threshold and the arena count) is left as the user set it
/// ([`malloc_settings`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let env = |name: &str| std::env::var(name).ok();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (param, value) in malloc_settings(&env, cores) {
        // SAFETY: mallopt only sets malloc's parameters; no other thread runs yet.
        unsafe { libc::mallopt(param, value) };
    }
}

/// The `mallopt` parameters and values [`keep_freed_memory`] sets, given
/// the environment (`env` reads a variable) and the core count.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_settings(
    env: &dyn Fn(&str) -> Option<String>,
    cores: usize,
) -> Vec<(libc::c_int, libc::c_int)> {
    let tunables = env("GLIBC_TUNABLES").unwrap_or_default();
    let arenas = (cores / 4).clamp(1, 64) as libc::c_int;
    [
        (
            libc::M_MMAP_THRESHOLD,
            32 << 20,
            "MALLOC_MMAP_THRESHOLD_",
            "glibc.malloc.mmap_threshold",
        ),
        (
            libc::M_TRIM_THRESHOLD,
            1 << 30,
            "MALLOC_TRIM_THRESHOLD_",
            "glibc.malloc.trim_threshold",
        ),
        (
            libc::M_ARENA_MAX,
            arenas,
            "MALLOC_ARENA_MAX",
            "glibc.malloc.arena_max",
        ),
    ]
    .into_iter()
    .filter(|(_, _, var, tunable)| env(var).is_none() && !tunables.contains(tunable))
    .map(|(param, value, _, _)| (param, value))
    .collect()
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::malloc_settings;

    fn settings(vars: &[(&str, &str)]) -> Vec<(libc::c_int, libc::c_int)> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        malloc_settings(&env, 2)
    }

    const ONE_ARENA: (libc::c_int, libc::c_int) = (libc::M_ARENA_MAX, 1);

    #[test]
    fn every_setting_unless_the_user_set_it() {
        let ours = vec![
            (libc::M_MMAP_THRESHOLD, 32 << 20),
            (libc::M_TRIM_THRESHOLD, 1 << 30),
            ONE_ARENA,
        ];
        assert_eq!(settings(&[]), ours);
        // Unrelated tunables leave them all to prep.
        assert_eq!(
            settings(&[("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")]),
            ours
        );
        assert_eq!(
            settings(&[("MALLOC_MMAP_THRESHOLD_", "65536")]),
            vec![(libc::M_TRIM_THRESHOLD, 1 << 30), ONE_ARENA]
        );
        assert_eq!(
            settings(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")]),
            vec![(libc::M_MMAP_THRESHOLD, 32 << 20), ONE_ARENA]
        );
        assert_eq!(
            settings(&[("MALLOC_ARENA_MAX", "8")]),
            vec![
                (libc::M_MMAP_THRESHOLD, 32 << 20),
                (libc::M_TRIM_THRESHOLD, 1 << 30)
            ]
        );
        assert!(settings(&[
            ("MALLOC_TRIM_THRESHOLD_", "0"),
            (
                "GLIBC_TUNABLES",
                "glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=4"
            ),
        ])
        .is_empty());
    }

    #[test]
    fn one_heap_per_four_cores() {
        let arenas = |cores| {
            super::malloc_settings(&|_| None, cores)
                .into_iter()
                .find(|(p, _)| *p == libc::M_ARENA_MAX)
                .map(|(_, v)| v)
        };
        assert_eq!(arenas(1), Some(1));
        assert_eq!(arenas(2), Some(1));
        assert_eq!(arenas(16), Some(4));
    }
}
