//! The `binfmtctl` binary: a shim that sets up logging, runs the command line and maps the
//! error chain to an exit code through `binfmtctl::exit` (documented in `binfmtctl --help` and
//! docs/exit-codes.md). The only place the process's exit status is decided.

use std::io::Write;
use std::process::ExitCode;

use binfmtctl::cli;
use binfmtctl::error::ErrorKind;
use binfmtctl::exit;

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

/// Log lines in the style of the program's own messages (`binfmtctl: warning: ...`,
/// `binfmtctl: note: ...`), not tracing's `WARN` (issue 21: the two styles mixed).
struct LogStyle;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LogStyle
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "binfmtctl: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(args) => args,
        // clap printed the usage error (or the help); its exit code.
        Err(code) => return ExitCode::from(code),
    };
    let level = match (args.cli.output.quiet, args.cli.output.verbose) {
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
        .event_format(LogStyle)
        .init();
    let json = args.cli.output.json;
    let stdout = std::io::stdout();
    // A closed stdout: the output would be lost, yet we would report success. Fail before
    // doing anything.
    if stdout_was_closed(&stdout) {
        let _ = writeln!(
            std::io::stderr(),
            "binfmtctl: error: standard output is closed: run it with stdout open (>/dev/null to discard)"
        );
        return ExitCode::from(ErrorKind::Failed.exit_code());
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
    .and_then(|status| {
        out.write_all(&held)?;
        out.flush()?;
        Ok(status)
    });
    match result {
        // 0, or the status of a hidden helper stage.
        Ok(status) => ExitCode::from(status),
        // The reader went away (`binfmtctl arches | head -1`): end quietly with success, as
        // well-behaved Unix tools do, so no `pipefail` script breaks on it.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // The report (`doctor`) says what will not run: printed as it is, then only the status.
        Err(e) if e.downcast_ref::<binfmtctl::error::Reported>().is_some() => {
            match out.write_all(&held).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::from(exit::exit_code(&e)),
                Err(_) => ExitCode::from(ErrorKind::Failed.exit_code()),
            }
        }
        Err(e) => {
            if json {
                let v = exit::error_json(&e, &held);
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                );
            }
            let _ = out.flush();
            // The command run in a sandbox spoke for itself; just pass its status on.
            if e.downcast_ref::<binfmtctl::error::ChildExit>().is_none() {
                // Never panic on a closed or broken stderr.
                let _ = writeln!(
                    std::io::stderr(),
                    "binfmtctl: error: {}",
                    // File names in messages are untrusted: no raw escape sequences.
                    binfmtctl::escape::escape_lines(&exit::render_error(&e))
                );
            }
            ExitCode::from(exit::exit_code(&e))
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
