//! Entry point: parse the command line and hand off to [`gatehouse::cli`].

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
