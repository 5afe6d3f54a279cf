//! The worker's rsync push and the receiving server it starts on the node, side by
//! side: [`push_args`] is every option the worker gives its local rsync, and
//! [`Receive::parse`] allows exactly the server command line rsync derives from them
//! (the test `the_real_rsync_client_is_allowed` runs the real rsync with
//! [`push_args`] and feeds what it would send to the node through the parser, so the
//! two cannot drift).
//!
//! One push moves a batch: `--files-from` lists `<xx>/<id>` paths relative to a
//! source directory, `--files-from` implies `--relative`, so each lands at
//! `<root>/<xx>/<id>`; the destination on the command line is the root itself. The
//! receiving rsync refuses names with `..` components and strips leading slashes
//! under `--relative` (rsync >= 3.1.1), and without `-l`/`-L`/`-K`/`-D` it creates
//! no links or devices, so a receive stays under the root.

use std::path::Path;

use crate::root::NodeRoot;
use crate::Denied;

/// What rsync prints (`--out-format`) for every file it sent, before `<xx>/<id> <sum>`
/// (`<sum>`: the file's whole-file transfer checksum, [`TRANSFER_CHECKSUM`], in hex).
pub const TRANSFER_LINE: &str = "ferry-transfer ";

/// rsync's whole-file transfer checksum for a push (`--checksum-choice`): XXH3-128
/// (rsync >= 3.2.0), printed by `%C` as the 32 hex digits of its canonical big-endian
/// form (what `xxhsum -H2` and `XXH128_canonicalFromHash` give).
///
/// Not md5, which both ends of every copy computed before: of a 1 GiB file's two
/// replicas pushed at once on this project's 2-core machine, 7.3 s with md5 against
/// 4.6 s with xxh128 (plain rsync over ssh, `--fsync`). The checksum only has to
/// prove that the copy is the bytes the sender read; that those are the upload's the
/// worker proves itself, reading the staging copy once per push for its sha256 (the
/// file's recorded one) and XXH3-128 (the sum rsync must print): see `ferry-worker`'s
/// `Ssh::push`.
pub const TRANSFER_CHECKSUM: &str = "xxh128";

/// Transfer checksums a node's gate accepts: [`TRANSFER_CHECKSUM`], and `md5`, which
/// workers before it asked for (a node is upgraded before or after its workers).
const ACCEPTED_CHECKSUMS: &[&str] = &[TRANSFER_CHECKSUM, "md5"];

/// rsync's partial directory (relative to each file's directory on the node).
pub const PARTIAL_DIR: &str = ".rsync-partial";

/// The worker's rsync options for one push of the files listed NUL-separated in
/// `files_from` (relative `<xx>/<id>` paths), before `-e`, the source directory and the
/// destination.
///
/// - `--protect-args`: names travel inside the protocol, never through a remote shell;
/// - `--times --omit-dir-times`: the copy keeps staging's mtime; shard dirs are left alone;
/// - `--ignore-times`: every listed file is sent, so each gets its own checksum line
///   (an identical leftover from an earlier attempt costs a delta pass, not a re-check);
/// - `--partial-dir`: an interrupted transfer's bytes wait for the retry, off the final name;
/// - `--checksum-choice=xxh128 --out-format=...%C`: rsync's whole-file transfer checksum
///   is [`TRANSFER_CHECKSUM`], and the sender prints it per file; the receiver checks its
///   rebuilt file against it and discards the file on a mismatch;
/// - `--fsync` (rsync >= 3.2.4): the receiver fsyncs each file before renaming it into
///   place, so a copy counted as a replica survives a power loss on the node (the
///   gate then makes the directory entries durable: [`crate::root::sync_changed_shards`]).
pub fn push_args(timeout_secs: u64, files_from: &Path) -> Vec<String> {
    vec![
        "--protect-args".into(),
        "--fsync".into(),
        "--times".into(),
        "--omit-dir-times".into(),
        "--ignore-times".into(),
        "--chmod=F0644,D0755".into(),
        format!("--partial-dir={PARTIAL_DIR}"),
        format!("--checksum-choice={TRANSFER_CHECKSUM}"),
        format!("--out-format={TRANSFER_LINE}%n %C"),
        format!("--timeout={timeout_secs}"),
        format!("--files-from={}", files_from.display()),
        "--from0".into(),
    ]
}

/// The `(relative path, checksum)` pairs (the checksum as 32 lowercase hex digits) in
/// the output of a push made with [`push_args`]; lines of other shapes (directories
/// carry no checksum) are skipped.
pub fn transfer_lines(out: &str) -> impl Iterator<Item = (&str, String)> {
    out.lines().filter_map(|line| {
        let (name, sum) = line.strip_prefix(TRANSFER_LINE)?.trim_end().split_once(' ')?;
        let sum = sum.trim();
        (sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (name, sum.to_ascii_lowercase()))
    })
}

/// The modes every received file and directory gets, imposed by the gate on the
/// receiving server (rsync's `--chmod` given to the receiver stands in for the modes
/// the sender supplied): files `0644`, shard directories `0755`, never setuid,
/// setgid, sticky or world-writable, whatever the client asks for. Without `-p`
/// (never allowed) the receiver also masks them with its umask, which the gate sets
/// to `022`.
pub const RECEIVER_CHMOD: &str = "--chmod=F0644,D0755";

/// Single-letter flags the receiving server may get: `s` (protect-args), `O`, `t`,
/// `I`, `R` from [`push_args`]. Never links (`l`, `L`, `k`, `K`), devices (`D`),
/// deletes or a sender.
const SERVER_FLAGS: &str = "sOtIR";
/// At most this many arguments / bytes of protected arguments are read from stdin.
pub const MAX_PROTECTED_ARGS: usize = 64;
pub const MAX_PROTECTED_BYTES: usize = 64 * 1024;

/// An allowed `rsync --server` receive into the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receive {
    /// The single-letter flags without `s` (the gate passes the arguments on the command line).
    letters: String,
    /// rsync's capability suffix (`e.LsfxCIvu`), passed through.
    caps: String,
    /// Options in the form the server got them.
    options: Vec<String>,
}

impl Receive {
    /// Parses the server side of a push: `words` from sshd's command line (`rsync
    /// --server -<flags> [args]`); with `s` among the flags the arguments arrive on
    /// stdin instead and `protected` reads them.
    ///
    /// # Errors
    /// [`Denied`] for anything [`push_args`] does not produce.
    pub fn parse(
        words: &[String],
        root: &NodeRoot,
        protected: impl FnOnce() -> Result<Vec<String>, Denied>,
    ) -> Result<Receive, Denied> {
        if words.len() < 3 || words[1] != "--server" {
            return Err(Denied::new("only 'rsync --server' (receiving) is allowed"));
        }
        let flags = words[2].strip_prefix('-').ok_or_else(|| Denied::new(format!("rsync flags {:?}", words[2])))?;
        let (letters, caps) = match flags.find('e') {
            Some(at) if flags[at..].starts_with("e.") => flags.split_at(at),
            _ => (flags, ""),
        };
        if letters.is_empty() && caps.is_empty() || !caps.chars().skip(2).all(|c| c.is_ascii_alphabetic()) {
            return Err(Denied::new(format!("rsync flags {:?}", words[2])));
        }
        let bad: String = letters.chars().filter(|c| !SERVER_FLAGS.contains(*c)).collect();
        if !bad.is_empty() {
            return Err(Denied::new(format!("rsync flag(s) {bad} not allowed")));
        }
        let args = if letters.contains('s') {
            if words.len() != 3 {
                return Err(Denied::new("unexpected rsync arguments beside --protect-args"));
            }
            let args = protected()?;
            match args.split_first() {
                Some((first, rest)) if first == "rsync" => rest.to_vec(),
                _ => return Err(Denied::new("protected rsync arguments do not start with 'rsync'")),
            }
        } else {
            words[3..].to_vec()
        };
        let mut options = Vec::new();
        let mut rest = args.iter();
        loop {
            let Some(arg) = rest.next() else {
                return Err(Denied::new("rsync arguments end before '.'"));
            };
            if arg == "." {
                break;
            }
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value.to_owned()),
                None if arg == "--partial-dir" => {
                    (arg.as_str(), rest.next().cloned().ok_or_else(|| Denied::new("--partial-dir needs a value"))?)
                }
                None => (arg.as_str(), String::new()),
            };
            let allowed = match name {
                "--log-format" => value == "X",
                "--checksum-choice" => ACCEPTED_CHECKSUMS.contains(&value.as_str()),
                "--partial-dir" => value == PARTIAL_DIR,
                "--timeout" => (1..=6).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
                "--fsync" => arg == "--fsync",
                _ => false,
            };
            if !allowed {
                return Err(Denied::new(format!("rsync option {arg:?} not allowed")));
            }
            options.push(if arg == "--fsync" { arg.clone() } else { format!("{name}={value}") });
        }
        match rest.as_slice() {
            [dest] if root.is_root(dest) => {}
            _ => return Err(Denied::new("rsync must receive into the storage root, one destination after '.'")),
        }
        Ok(Receive { letters: letters.replace('s', ""), caps: caps.to_owned(), options })
    }

    /// The receiving server's argv, arguments on the command line, with
    /// [`RECEIVER_CHMOD`] added by the gate whatever the client sent.
    pub fn argv(&self, root: &NodeRoot) -> Vec<String> {
        let mut argv = vec!["rsync".to_owned(), "--server".to_owned()];
        let flags = format!("-{}{}", self.letters, self.caps);
        if flags != "-" {
            argv.push(flags);
        }
        argv.extend(self.options.iter().cloned());
        argv.push(RECEIVER_CHMOD.into());
        argv.push(".".into());
        argv.push(format!("{}/", root.as_str()));
        argv
    }
}

/// Reads rsync's protected arguments from `input`: each NUL-terminated, ended by an
/// empty one. One byte per read, so the protocol bytes after them stay unread for the
/// real rsync that inherits the same stdin.
///
/// # Errors
/// [`Denied`] when the input ends early, is not UTF-8, or exceeds the limits.
pub fn read_protected_args(mut input: impl std::io::Read) -> Result<Vec<String>, Denied> {
    let mut args = Vec::new();
    let mut current = Vec::new();
    let mut total = 0;
    loop {
        let mut byte = [0u8];
        match input.read(&mut byte) {
            Ok(1) => {}
            Ok(_) => return Err(Denied::new("stdin closed before rsync's protected arguments ended")),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Denied::new(format!("reading rsync's protected arguments: {e}"))),
        }
        total += 1;
        if total > MAX_PROTECTED_BYTES {
            return Err(Denied::new("rsync's protected arguments are too long"));
        }
        if byte[0] != 0 {
            current.push(byte[0]);
            continue;
        }
        if current.is_empty() {
            return Ok(args);
        }
        let arg =
            String::from_utf8(std::mem::take(&mut current)).map_err(|_| Denied::new("rsync argument is not UTF-8"))?;
        args.push(arg);
        if args.len() > MAX_PROTECTED_ARGS {
            return Err(Denied::new("too many rsync arguments"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &str = "-sOtIRe.LsfxCIvu";

    fn root() -> NodeRoot {
        NodeRoot::new("/srv/ferry").expect("root")
    }

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    fn protected(args: &[&str]) -> impl FnOnce() -> Result<Vec<String>, Denied> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        move || Ok(args)
    }

    fn receive(args: &[&str]) -> Result<Receive, Denied> {
        Receive::parse(&words(&format!("rsync --server {FLAGS}")), &root(), protected(args))
    }

    const GOOD: &[&str] = &[
        "rsync",
        "--fsync",
        "--log-format=X",
        "--timeout=60",
        "--checksum-choice=xxh128",
        "--partial-dir",
        ".rsync-partial",
        ".",
        "/srv/ferry/",
    ];

    #[test]
    fn the_workers_receive_is_allowed_and_runs_without_protect_args() {
        let allowed = receive(GOOD).expect("allowed");
        assert_eq!(
            allowed.argv(&root()).join(" "),
            "rsync --server -OtIRe.LsfxCIvu --fsync --log-format=X --timeout=60 --checksum-choice=xxh128 \
             --partial-dir=.rsync-partial --chmod=F0644,D0755 . /srv/ferry/"
        );
        let plain = Receive::parse(&words("rsync --server -tIRe.LsfxCIvu --timeout=5 . /srv/ferry"), &root(), || {
            Err(Denied::new("stdin must not be read"))
        });
        assert!(plain.is_ok());
        let md5: Vec<&str> =
            GOOD.iter().map(|a| if a.starts_with("--checksum-choice") { "--checksum-choice=md5" } else { a }).collect();
        assert!(receive(&md5).is_ok(), "the md5 an older worker asks for");
    }

    #[test]
    fn anything_else_is_refused() {
        fn swap(from: &str, to: &'static str) -> Vec<&'static str> {
            GOOD.iter().map(|a| if *a == from { to } else { *a }).collect()
        }
        for (what, args) in [
            ("no checksum", swap("--checksum-choice=xxh128", "--checksum-choice=none")),
            ("a weaker checksum", swap("--checksum-choice=xxh128", "--checksum-choice=xxh64")),
            ("server-side log format", swap("--log-format=X", "--log-format=%f")),
            ("destination outside the root", swap("/srv/ferry/", "/etc/cron.d/")),
            ("destination a file", swap("/srv/ferry/", "/srv/ferry/ab/x")),
            ("other partial dir", swap(".rsync-partial", "/tmp")),
            ("--delete", swap("--timeout=60", "--delete")),
            ("--remove-source-files", swap("--timeout=60", "--remove-source-files")),
            ("--inplace", swap("--timeout=60", "--inplace")),
            ("--fsync with a value", swap("--fsync", "--fsync=x")),
            ("--recursive", swap("--fsync", "--recursive")),
            ("--chmod on the receiver", swap("--fsync", "--chmod=F4755")),
            ("--perms", swap("--fsync", "--perms")),
            ("not rsync", swap("rsync", "sh")),
        ] {
            assert!(receive(&args).is_err(), "{what}");
        }
        let mut two = GOOD.to_vec();
        two.push("/srv/ferry/");
        assert!(receive(&two).is_err(), "two destinations");
        for flags in [
            "-sOtIRle.LsfxCIvu",
            "-sOtIRre.LsfxCIvu",
            "-sOtIRpe.LsfxCIvu",
            "-sOtIRge.LsfxCIvu",
            "-sKe.x",
            "-sDe.x",
            "-",
            "-se.Ls$",
            "x",
        ] {
            let parsed = Receive::parse(&words(&format!("rsync --server {flags}")), &root(), protected(GOOD));
            assert!(parsed.is_err(), "{flags}");
        }
        let sender =
            Receive::parse(&words("rsync --server --sender -te.LsfxCIvu . /srv/ferry/"), &root(), protected(GOOD));
        assert!(sender.is_err(), "a sender");
        let extra = Receive::parse(&words(&format!("rsync --server {FLAGS} . /srv/ferry/")), &root(), protected(GOOD));
        assert!(extra.is_err(), "arguments beside --protect-args");
    }

    #[test]
    fn protected_args_are_read_to_their_end_and_no_further() {
        let mut input: &[u8] = b"rsync\0--timeout=60\0.\0/srv/ferry/\0\0PROTOCOL";
        let args = read_protected_args(&mut input).expect("read");
        assert_eq!(args, ["rsync", "--timeout=60", ".", "/srv/ferry/"]);
        assert_eq!(input, b"PROTOCOL");
        assert!(read_protected_args(&b"rsync\0."[..]).is_err(), "cut short");
        assert!(read_protected_args(&[b'a'; MAX_PROTECTED_BYTES + 1][..]).is_err(), "too long");
        assert!(read_protected_args(&b"\xff\0\0"[..]).is_err(), "not utf-8");
    }

    #[test]
    fn transfer_lines_carry_path_and_checksum() {
        let sum = "8f74a3e7e25eaa410441677ff3f64ca3";
        let out = format!(
            "{TRANSFER_LINE}ab/ \n{TRANSFER_LINE}ab/x {}\nnoise\n{TRANSFER_LINE}cd/y {}\n",
            sum.to_uppercase(),
            &sum[..31]
        );
        assert_eq!(transfer_lines(&out).collect::<Vec<_>>(), [("ab/x", sum.to_owned())]);
    }

    /// Runs the real rsync client with the worker's options, a remote shell that
    /// records what rsync would start on the node, and checks that the gate allows it.
    #[test]
    fn the_real_rsync_client_is_allowed() {
        use std::process::Command;
        if Command::new("rsync").arg("--version").output().is_err() {
            eprintln!("rsync is not installed; skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ferry-push-{}", uuid::Uuid::new_v4()));
        let id = uuid::Uuid::new_v4();
        let rel = crate::root::relpath(id);
        std::fs::create_dir_all(dir.join("src").join(&rel[..2])).expect("mkdir");
        std::fs::write(dir.join("src").join(&rel), b"bytes").expect("write");
        std::fs::write(dir.join("list"), format!("{rel}\0")).expect("write");
        let shell = dir.join("shell.sh");
        std::fs::write(
            &shell,
            format!(
                "#!/bin/sh\nshift 3\nprintf '%s\\n' \"$*\" > {d}/command\ntimeout 2 cat > {d}/stdin\n",
                d = dir.display()
            ),
        )
        .expect("write");
        Command::new("chmod").arg("+x").arg(&shell).status().expect("chmod");
        let _ = Command::new("rsync")
            .args(push_args(60, &dir.join("list")))
            .arg("-e")
            .arg(&shell)
            .arg(format!("{}/", dir.join("src").display()))
            .arg("u@h:/srv/ferry/")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("rsync runs");
        let line = std::fs::read_to_string(dir.join("command")).expect("remote command recorded");
        let stdin = std::fs::read(dir.join("stdin")).expect("stdin recorded");
        let words = crate::words::split(line.trim()).expect("split");
        let receive =
            Receive::parse(&words, &root(), || read_protected_args(&stdin[..])).expect("the gate allows the push");
        assert_eq!(receive.argv(&root()).last().map(String::as_str), Some("/srv/ferry/"));
        assert!(receive.argv(&root()).contains(&format!("--checksum-choice={TRANSFER_CHECKSUM}")));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
