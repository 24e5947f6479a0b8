//! The `cryptolake` binary: see `cryptolake --help`.

fn main() -> std::process::ExitCode {
    cryptolake::cli::main()
}
