// mimalloc keeps freed chunk buffers for reuse instead of unmapping them;
// with glibc malloc a run spent ~40% of its time in page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(prep::cli::main());
}
