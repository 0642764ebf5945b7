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
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES`
/// in the environment leave glibc's settings to the user.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let user_set = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "GLIBC_TUNABLES",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    if user_set {
        return;
    }
    // SAFETY: mallopt only sets malloc's parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
