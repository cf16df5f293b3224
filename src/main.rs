//! The `binfmtctl` binary: a shim that sets up logging, runs the command line and maps the
//! error chain to an exit code (documented in `binfmtctl --help` and docs/exit-codes.md).

use std::io::Write;
use std::process::ExitCode;

use binfmtctl::cli;

fn main() -> ExitCode {
    let args = cli::parse();
    let level = match (args.output.quiet, args.output.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BINFMTCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let json = args.output.json;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // With --json the output is held until the end, so a failure can carry what was printed
    // before it inside the one error object (docs/json.md).
    let mut held: Vec<u8> = Vec::new();
    let result = if json {
        cli::run(args, &mut held)
    } else {
        cli::run(args, &mut out)
    };
    match result {
        Ok(()) => {
            let _ = out.write_all(&held);
            let _ = out.flush();
            ExitCode::from(cli::EXIT_OK)
        }
        Err(e) => {
            if json {
                let v = cli::error_json(&e, &held);
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                );
            }
            let _ = out.flush();
            // The command run in a sandbox spoke for itself; just pass its status on.
            if e.downcast_ref::<cli::ChildExit>().is_none() {
                eprintln!("binfmtctl: error: {}", cli::render_error(&e));
            }
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
