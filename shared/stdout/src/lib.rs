//! [`outln!`]: `println!` for a program whose stdout may be a pipe whose reader goes
//! away (`ferry jobs ls --json | head`, `deploy/dev status | head -3`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe` and
//! `println!` panics ("failed printing to stdout: Broken pipe", status 101, with a
//! backtrace). [`outln!`] ends the program quietly with status 0 instead, as a C tool
//! ends (killed by SIGPIPE, which a shell pipeline without `pipefail` does not report),
//! and with status 1 and the error on stderr for any other failed write (a full disk).
//!
//! SIGPIPE itself stays ignored: the same processes write to child processes' pipes and
//! to sockets, where a broken pipe is an error to handle, not a reason to die. Only the
//! program's own stdout gets this policy, and only through this macro.

use std::io::{self, Write};

/// Writes one line to stdout like `println!`; a reader that went away ends the program
/// quietly with status 0, any other write error ends it with status 1 (see the crate
/// doc). Only for a binary's own output: it never returns on a failed write.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::write_line(::std::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::write_line(::std::format_args!($($arg)*))
    };
}

/// What [`outln!`] calls: writes `line` and a newline to stdout, or ends the program
/// through [`stdout_failed`].
pub fn write_line(line: std::fmt::Arguments<'_>) {
    if let Err(error) = writeln!(io::stdout().lock(), "{line}") {
        stdout_failed(&error);
    }
}

/// Ends the program after a failed write to stdout: quietly with status 0 when the
/// reader went away (`BrokenPipe`), else with `<program>: writing to stdout: <error>`
/// on stderr and status 1.
pub fn stdout_failed(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let program = std::env::args_os()
        .next()
        .and_then(|arg0| std::path::Path::new(&arg0).file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ferry".to_owned());
    eprintln!("{program}: writing to stdout: {error}");
    std::process::exit(1);
}
