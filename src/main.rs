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
/// A parameter the user set (`MALLOC_MMAP_THRESHOLD_`, or
/// `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`; the same for the trim
/// threshold) is left as the user set it ([`malloc_settings`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let env = |name: &str| std::env::var(name).ok();
    for (param, value) in malloc_settings(&env) {
        // SAFETY: mallopt only sets malloc's parameters; no other thread runs yet.
        unsafe { libc::mallopt(param, value) };
    }
}

/// The `mallopt` parameters and values [`keep_freed_memory`] sets, given
/// the environment (`env` reads a variable).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_settings(env: &dyn Fn(&str) -> Option<String>) -> Vec<(libc::c_int, libc::c_int)> {
    let tunables = env("GLIBC_TUNABLES").unwrap_or_default();
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
        malloc_settings(&env)
    }

    #[test]
    fn both_thresholds_unless_the_user_set_them() {
        let ours = vec![
            (libc::M_MMAP_THRESHOLD, 32 << 20),
            (libc::M_TRIM_THRESHOLD, 1 << 30),
        ];
        assert_eq!(settings(&[]), ours);
        // Unrelated tunables leave both to prep.
        assert_eq!(
            settings(&[("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")]),
            ours
        );
        assert_eq!(
            settings(&[("MALLOC_MMAP_THRESHOLD_", "65536")]),
            vec![(libc::M_TRIM_THRESHOLD, 1 << 30)]
        );
        assert_eq!(
            settings(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")]),
            vec![(libc::M_MMAP_THRESHOLD, 32 << 20)]
        );
        assert!(settings(&[
            ("MALLOC_TRIM_THRESHOLD_", "0"),
            ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072"),
        ])
        .is_empty());
    }
}
