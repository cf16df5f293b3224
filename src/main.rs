//! The `binfmtctl` binary: a shim that sets up logging, runs the command line and maps the
//! error chain to an exit code (documented in `binfmtctl --help` and docs/exit-codes.md).

use std::io::Write;
use std::process::ExitCode;

use binfmtctl::cli;

/// Is this descriptor `/dev/null` opened read-write, which is what Rust's runtime puts in place
/// of a closed standard descriptor before `main` (a shell's `>/dev/null` opens it write-only)?
fn is_runtime_null(fd: impl std::os::fd::AsFd) -> bool {
    use rustix::fs::{FileType, OFlags};
    let (Ok(fl), Ok(st)) = (rustix::fs::fcntl_getfl(&fd), rustix::fs::fstat(&fd)) else {
        return true;
    };
    fl & OFlags::RWMODE == OFlags::RDWR
        && FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
        && (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)) == (1, 3)
}

/// Was stdout closed when we were started? A daemon that points all of 0, 1 and 2 at
/// `/dev/null` read-write (start-stop-daemon --background does) is not mistaken for that:
/// only stdout is, while stderr is something else.
fn stdout_was_closed(stdout: &std::io::Stdout) -> bool {
    is_runtime_null(stdout) && !is_runtime_null(std::io::stderr())
}

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
    // A closed stdout: the output would be lost, yet we would report success. Fail before
    // doing anything.
    if stdout_was_closed(&stdout) {
        let _ = writeln!(
            std::io::stderr(),
            "binfmtctl: error: standard output is closed: run it with stdout open (>/dev/null to discard)"
        );
        return ExitCode::from(cli::EXIT_FAILED);
    }
    let mut out = stdout.lock();
    // With --json the output is held until the end, so a failure can carry what was printed
    // before it inside the one error object (docs/json.md).
    let mut held: Vec<u8> = Vec::new();
    let result = if json {
        cli::run(args, &mut held)
    } else {
        cli::run(args, &mut out)
    }
    // A write error at the end (a closed pipe, a full disk) is a failure, not success.
    .and_then(|()| {
        out.write_all(&held)?;
        Ok(out.flush()?)
    });
    match result {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        // `doctor` printed its report, which says what will not run: only the status remains.
        Err(e) if e.downcast_ref::<cli::doctor::Reported>().is_some() => {
            match out.write_all(&held).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::from(cli::exit_code(&e)),
                Err(_) => ExitCode::from(cli::EXIT_FAILED),
            }
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
                // Never panic on a closed or broken stderr.
                let _ = writeln!(
                    std::io::stderr(),
                    "binfmtctl: error: {}",
                    // File names in messages are untrusted: no raw escape sequences.
                    binfmtctl::input::escape_lines(&cli::render_error(&e))
                );
            }
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
