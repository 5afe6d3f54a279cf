//! Command lines as sshd hands them to the forced command: words the worker
//! single-quotes ([`quote`]) and the gate splits again ([`split`]) without any shell.

use crate::Denied;

/// Characters a word may carry unquoted (rsync's own server command line is unquoted).
fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/:=,+@%-".contains(c)
}

/// POSIX single-quote quoting of one word (`it's` -> `'it'\''s'`).
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The command line for `words`, every word quoted with [`quote`].
pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// Splits a command line made of single-quoted words (`'it'\''s'` included) and
/// unquoted safe characters. Anything a shell would interpret (`$`, `;`, `` ` ``,
/// double quotes, backslashes other than `\'`, control characters) is refused.
pub fn split(line: &str) -> Result<Vec<String>, Denied> {
    if line.contains(['\0', '\n', '\r']) {
        return Err(Denied::new("control characters in command"));
    }
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                ' ' | '\t' => break,
                '\'' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err(Denied::new("unterminated quote")),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    match chars.next() {
                        Some('\'') => word.push('\''),
                        _ => return Err(Denied::new("character '\\\\' is not allowed")),
                    }
                }
                c if is_safe(c) => {
                    word.push(c);
                    chars.next();
                }
                c => return Err(Denied::new(format!("character {c:?} is not allowed"))),
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quoted_and_plain_words_split() {
        assert_eq!(split("'a b' c 'it'\\''s'").expect("ok"), ["a b", "c", "it's"]);
        assert_eq!(split("  rsync --server -te.LsfxCIvu  ").expect("ok"), ["rsync", "--server", "-te.LsfxCIvu"]);
        assert!(split("").expect("ok").is_empty());
    }

    #[test]
    fn shell_syntax_is_refused() {
        for line in ["a $(id)", "a; id", "a `id`", "\"a\"", "a | b", "a > b", "a\nb", "a \\n", "'open", "a & b"] {
            assert!(split(line).is_err(), "{line:?}");
        }
    }

    proptest! {
        #[test]
        fn quote_then_split_round_trips(words in proptest::collection::vec("[^\\x00\\n\\r]{0,12}", 0..6)) {
            prop_assert_eq!(split(&join(&words)).expect("quoted words split"), words);
        }

        #[test]
        fn split_never_panics(line in "\\PC{0,64}") {
            let _ = split(&line);
        }
    }
}
