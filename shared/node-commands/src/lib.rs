//! Every remote command ferry-worker may run on a storage node, defined once.
//!
//! The worker builds its command lines from [`Command::command_line`] and its rsync
//! push from [`rsync::push_args`]; the node's forced command (`ferry-node-ssh-command`,
//! `src/main.rs`, installed as sshd's `ForceCommand` or `command=` in
//! authorized_keys) parses what sshd hands it in `$SSH_ORIGINAL_COMMAND` with
//! [`allow`], which accepts exactly those commands and nothing else, every path
//! confined to `<root>/<2 hex>/<uuid>`, and runs the real program with no shell in
//! between. A flag added on one side and not the other fails this crate's tests (the
//! round trips below, and a real rsync client run through the parser).
//!
//! | command (worker side)            | what for                                           |
//! |----------------------------------|----------------------------------------------------|
//! | rsync push ([`rsync::push_args`])| replicate: receive a batch of files into the root, durably: the gate runs the receiver, then fsyncs the directories it changed ([`root::sync_changed_shards`]) |
//! | `md5sum -- <file>...`            | replicate: re-check copies of a push that partly failed |
//! | `sha256sum -- <file>`            | scrub                                              |
//! | `rm -f -- <file>`                | delete, drop a replica, orphan sweep               |
//! | `mv -f -- <file> <file>.corrupt-<unix time>` | scrub: move a bad copy aside           |
//! | `find <root> -mindepth 2 -maxdepth 2 -type f -mmin +<minutes>` | orphan sweep listing |

pub mod root;
pub mod rsync;
pub mod words;

use uuid::Uuid;

pub use root::NodeRoot;
pub use rsync::Receive;

/// Exit status of a refused command (unlike md5sum's or sha256sum's 1, never mistaken
/// for a missing file).
pub const DENIED_EXIT: i32 = 126;

/// Exit status of a receive whose files arrived but whose directory entries could not
/// be made durable (not one of rsync's own codes, which the gate passes through; the
/// sending rsync exits with its remote shell's status when its own is 0).
pub const SYNC_FAILED_EXIT: i32 = 125;

/// Most files one `md5sum` may name (a batch re-check).
pub const MAX_FILES: usize = 1024;

/// Why the gate refused a command (sent to the worker on stderr).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(String);

impl Denied {
    pub fn new(reason: impl Into<String>) -> Denied {
        Denied(reason.into())
    }
}

/// A remote command other than the rsync receive, with typed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `md5sum -- <file>...`: hex md5 and path per line; exit 1 if one is unreadable.
    Md5Sum(Vec<Uuid>),
    /// `sha256sum -- <file>`.
    Sha256Sum(Uuid),
    /// `rm -f -- <file>`: a missing file is success.
    Remove(Uuid),
    /// `mv -f -- <file> <file>.corrupt-<at_unix>`: out of the served layout, kept for inspection.
    MoveAside { file: Uuid, at_unix: u64 },
    /// `find <root> -mindepth 2 -maxdepth 2 -type f -mmin +<minutes>`: stored files
    /// older than `minutes`, one path per line.
    ListOlderThan { minutes: u32 },
}

impl Command {
    /// The words of this command on a node with `root` (program first).
    pub fn words(&self, root: &NodeRoot) -> Vec<String> {
        let words: Vec<String> = match self {
            Command::Md5Sum(files) => {
                ["md5sum", "--"].into_iter().map(str::to_owned).chain(files.iter().map(|f| root.file(*f))).collect()
            }
            Command::Sha256Sum(file) => vec!["sha256sum".into(), "--".into(), root.file(*file)],
            Command::Remove(file) => vec!["rm".into(), "-f".into(), "--".into(), root.file(*file)],
            Command::MoveAside { file, at_unix } => {
                let path = root.file(*file);
                vec!["mv".into(), "-f".into(), "--".into(), path.clone(), format!("{path}.corrupt-{at_unix}")]
            }
            Command::ListOlderThan { minutes } => {
                let mut words = vec!["find".to_owned(), root.as_str().to_owned()];
                words.extend(FIND_OPTIONS.iter().map(|w| (*w).to_owned()));
                words.push(format!("+{minutes}"));
                words
            }
        };
        words
    }

    /// The command line the worker sends (every word single-quoted).
    pub fn command_line(&self, root: &NodeRoot) -> String {
        words::join(&self.words(root))
    }

    /// The file paths this command names (for the gate's filesystem checks).
    fn paths(&self, root: &NodeRoot) -> Vec<String> {
        match self {
            Command::Md5Sum(files) => files.iter().map(|f| root.file(*f)).collect(),
            Command::Sha256Sum(file) | Command::Remove(file) => vec![root.file(*file)],
            Command::MoveAside { .. } => self.words(root)[3..].to_vec(),
            Command::ListOlderThan { .. } => Vec::new(),
        }
    }

    fn parse(words: &[String], root: &NodeRoot) -> Result<Command, Denied> {
        let strs: Vec<&str> = words.iter().map(String::as_str).collect();
        let command = match strs.as_slice() {
            ["md5sum", "--", files @ ..] if !files.is_empty() && files.len() <= MAX_FILES => {
                Command::Md5Sum(files.iter().map(|f| root.parse_file(f, "")).collect::<Result<_, _>>()?)
            }
            ["sha256sum", "--", file] => Command::Sha256Sum(root.parse_file(file, "")?),
            ["rm", "-f", "--", file] => Command::Remove(root.parse_file(file, "")?),
            ["mv", "-f", "--", from, to] => {
                let file = root.parse_file(from, "")?;
                let at = to
                    .strip_prefix(*from)
                    .and_then(|s| s.strip_prefix(".corrupt-"))
                    .filter(|t| (1..=20).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| Denied::new("mv target must be the same path + .corrupt-<unix time>"))?;
                Command::MoveAside { file, at_unix: at }
            }
            ["find", dir, options @ .., age]
                if root.is_root(dir) && options == FIND_OPTIONS && age.starts_with('+') =>
            {
                let minutes = age[1..]
                    .parse()
                    .ok()
                    .filter(|_| age[1..].bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| Denied::new(format!("find age {age:?}")))?;
                Command::ListOlderThan { minutes }
            }
            _ => {
                return Err(Denied::new(format!(
                    "command not allowed: {}",
                    strs.first().unwrap_or(&"(interactive login)")
                )))
            }
        };
        Ok(command)
    }
}

const FIND_OPTIONS: [&str; 7] = ["-mindepth", "2", "-maxdepth", "2", "-type", "f", "-mmin"];

/// A command the gate allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Receive(Receive),
    Command(Command),
}

impl Allowed {
    /// argv of the real program (program name first, looked up in `/usr/bin`, `/bin`).
    pub fn argv(&self, root: &NodeRoot) -> Vec<String> {
        match self {
            Allowed::Receive(receive) => receive.argv(root),
            Allowed::Command(command) => command.words(root),
        }
    }

    /// Filesystem checks: no named path leaves the root through a symlink.
    ///
    /// # Errors
    /// [`Denied`] naming the offending path.
    pub fn confine(&self, root: &NodeRoot) -> Result<(), Denied> {
        match self {
            Allowed::Receive(_) => Ok(()),
            Allowed::Command(command) => command.paths(root).iter().try_for_each(|p| root::confine(root, p)),
        }
    }
}

/// Parses sshd's `$SSH_ORIGINAL_COMMAND` for a node with `root`; `protected` reads
/// rsync's protected arguments from stdin when the command is an rsync receive with
/// `--protect-args` (and is not called otherwise).
///
/// # Errors
/// [`Denied`] for anything but the commands above.
pub fn allow(
    line: &str,
    root: &NodeRoot,
    protected: impl FnOnce() -> Result<Vec<String>, Denied>,
) -> Result<Allowed, Denied> {
    let words = words::split(line)?;
    match words.first().map(String::as_str) {
        Some("rsync") => Receive::parse(&words, root, protected).map(Allowed::Receive),
        _ => Command::parse(&words, root).map(Allowed::Command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab12cd34-0000-4000-8000-00000000beef";

    fn root() -> NodeRoot {
        NodeRoot::new("/srv/ferry").expect("root")
    }

    fn id() -> Uuid {
        ID.parse().expect("uuid")
    }

    fn no_stdin() -> Result<Vec<String>, Denied> {
        Err(Denied::new("stdin must not be read"))
    }

    #[test]
    fn every_command_the_worker_builds_is_allowed_as_itself() {
        let other: Uuid = "cd12cd34-0000-4000-8000-00000000beef".parse().expect("uuid");
        for command in [
            Command::Md5Sum(vec![id(), other]),
            Command::Sha256Sum(id()),
            Command::Remove(id()),
            Command::MoveAside { file: id(), at_unix: 1_764_000_000 },
            Command::ListOlderThan { minutes: 60 },
        ] {
            let line = command.command_line(&root());
            assert_eq!(allow(&line, &root(), no_stdin), Ok(Allowed::Command(command.clone())), "{line}");
        }
        assert_eq!(
            Command::MoveAside { file: id(), at_unix: 7 }.command_line(&root()),
            format!("'mv' '-f' '--' '/srv/ferry/ab/{ID}' '/srv/ferry/ab/{ID}.corrupt-7'")
        );
    }

    #[test]
    fn everything_else_is_denied() {
        let file = format!("/srv/ferry/ab/{ID}");
        for line in [
            String::new(),
            "sh -c id".into(),
            "'cat' '/etc/passwd'".into(),
            "'md5sum' '--' '/etc/shadow'".into(),
            "'md5sum' '--'".into(),
            format!("'sha256sum' '{file}'"),
            "'sha256sum' '--' '/srv/ferry/ab/../../../etc/passwd'".into(),
            format!("'sha256sum' '--' '/srv/ferry/cd/{ID}'"),
            "'rm' '-rf' '--' '/srv/ferry'".into(),
            format!("'rm' '-f' '--' '{file}' '/srv/ferry/cd/cd12cd34-0000-4000-8000-00000000beef'"),
            format!("'mv' '-f' '--' '{file}' '/tmp/x'"),
            format!("'mv' '-f' '--' '{file}' '{file}.corrupt-x'"),
            "'find' '/srv/ferry' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-delete'".into(),
            "'find' '/' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-mmin' '+60'".into(),
            "'find' '/srv/ferry' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-mmin' '+-1'".into(),
            "'sync' '--' '/srv/ferry' '/srv/ferry/ab'".into(),
            "sha256sum -- $(id)".into(),
            format!("sha256sum -- {file}; id"),
            format!("sha256sum -- \"{file}\""),
        ] {
            assert!(allow(&line, &root(), no_stdin).is_err(), "{line:?}");
        }
        let many = Command::Md5Sum(vec![id(); MAX_FILES + 1]).command_line(&root());
        assert!(allow(&many, &root(), no_stdin).is_err(), "too many files");
    }

    #[test]
    fn find_accepts_a_root_with_a_trailing_slash_and_runs_it_as_sent() {
        let line = "'find' '/srv/ferry/' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-mmin' '+5'";
        let allowed = allow(line, &root(), no_stdin).expect("allowed");
        assert_eq!(allowed, Allowed::Command(Command::ListOlderThan { minutes: 5 }));
        assert_eq!(allowed.argv(&root())[1], "/srv/ferry");
    }
}
