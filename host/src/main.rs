//! The `cryptolake` binary: see `cryptolake --help`.

fn main() -> std::process::ExitCode {
    cryptolake::memory::keep_freed_memory();
    cryptolake::cli::main()
}
