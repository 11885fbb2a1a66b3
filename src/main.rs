//! Entry point: parse the command line and hand off to [`gatehouse::cli`].

/// mimalloc instead of glibc's malloc: the reader threads allocate the rows that the actix
/// worker frees, and glibc handles such cross-thread frees poorly (its per-thread caches
/// drain into consolidation on the request path). See BENCHMARKS.md, section 4.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
