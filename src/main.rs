//! The `flotilla` binary: parse arguments, set up logging to stderr, run the
//! command, map the outcome to an exit code. Everything else is in `cli`.

use std::process::ExitCode;
use std::sync::Arc;

use flotilla::cli::{self, Cli};
use flotilla::clock::SystemClock;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{at}: {}", msg.replace('\n', " "));
    }));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
        // rmcp traces whole JSON-RPC messages at debug and trace, and a
        // `get_registry_token` answer carries a deploy token: never below
        // info, whatever RUST_LOG asks (this replaces an `rmcp=` directive).
        .add_directive(
            "rmcp=info"
                .parse()
                .expect("a constant, valid filter directive"),
        );
    // Colour only on a terminal: a file or pipe gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match cli.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, Arc::new(SystemClock))) {
        Ok(code) => code,
        // The reader went away (`flotilla get tenants | head`): not an error.
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
