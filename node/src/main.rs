//! The `bitcraps` binary: the operator's entry point (init, keys, config,
//! testnet, start, status, version). The commands live in `cli/`, one module
//! per verb; this file only hands over to them and turns the outcome into an
//! exit code.
#![forbid(unsafe_code)]

#[cfg(feature = "server")]
mod cli;

#[cfg(feature = "server")]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// Without the `server` feature there is no node to run; say so instead of
/// failing to build.
#[cfg(not(feature = "server"))]
fn main() -> std::process::ExitCode {
    eprintln!("error: bitcraps was built without the `server` feature");
    std::process::ExitCode::from(1)
}
