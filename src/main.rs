fn main() {
    std::process::exit(prep::cli::main());
}
