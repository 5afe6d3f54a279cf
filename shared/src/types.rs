//! Newtypes parsed once at the edge (HTTP, queue message, config) and trusted inside.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Id of an upload and of the file it becomes: the id a client gets from its first
/// chunk is the one it lists, downloads and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileId(pub Uuid);

impl FileId {
    pub fn new() -> Self {
        FileId(Uuid::new_v4())
    }

    /// Path of this file relative to a node's storage root: `<2 hex>/<uuid>`.
    /// Built only from the parsed UUID, so it cannot leave the root.
    pub fn node_relpath(&self) -> String {
        let s = self.0.as_hyphenated().to_string();
        format!("{}/{}", &s[..2], s)
    }
}

impl Default for FileId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for FileId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(FileId)
    }
}

/// A storage node's id (`nodes.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A user's id (`users.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A number of bytes: a file's size, an upload's offset, a node's free or total
/// space. Never negative; serialised as a plain JSON number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const ZERO: ByteSize = ByteSize(0);

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// For people: `1023 B`, `1.5 KiB`, `71.1 GiB` (binary units, one decimal from KiB
    /// on). The admin page and the `ferry` CLI both show sizes this way; scripts ask
    /// for exact byte counts (`ferry ... --bytes`, `--json`).
    pub fn human(self) -> String {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return format!("{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A size that [`ByteSize::parse_human`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size like 1048576, 500MB or 10GiB (B, KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024)")]
pub struct SizeParseError(String);

impl ByteSize {
    /// Reads `1048576`, `500MB`, `10GiB`, `1.5 TiB` (decimal units are powers of 1000,
    /// binary ones of 1024, as IEC 80000-13 has it): what an operator types for a quota.
    pub fn parse_human(s: &str) -> Result<ByteSize, SizeParseError> {
        let t = s.trim();
        let err = || SizeParseError(s.to_owned());
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number.parse().map_err(|_| err())?;
        let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024f64.powi(2),
            "gib" => 1024f64.powi(3),
            "tib" => 1024f64.powi(4),
            _ => return Err(err()),
        };
        let bytes = (n * factor).round();
        // Sizes are stored as BIGINT.
        if !(0.0..=i64::MAX as f64).contains(&bytes) {
            return Err(err());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B", self.0)
    }
}

/// An md5 digest, parsed from 32 hex digits (either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Md5(pub [u8; 16]);

/// A sha256 digest, parsed from 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hexadecimal digits")]
pub struct DigestParseError {
    expected: usize,
}

macro_rules! digest_impls {
    ($t:ident, $n:expr) => {
        impl FromStr for $t {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $n];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| DigestParseError { expected: $n * 2 })?;
                Ok($t(out))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_impls!(Md5, 16);
digest_impls!(Sha256, 32);

/// A file name as the client gave it, checked once: 1..=255 bytes of UTF-8, no NUL,
/// no control characters, no path separators, not `.` or `..`. It is only ever
/// metadata (storage paths are built from ids), but a name that would be dangerous
/// wherever a client saves it is refused rather than stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FileName(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    #[error("filename must not be empty")]
    Empty,
    #[error("filename must be at most 255 bytes")]
    TooLong,
    #[error("filename must not contain path separators, NUL or control characters")]
    BadCharacter,
    #[error("filename must not be '.' or '..'")]
    DotName,
    /// Bidi controls and invisible characters make a name display other than it reads
    /// (`invoice\u{202E}txt.exe` shows as `invoiceexe.txt`).
    #[error("filename must not contain bidirectional or invisible format characters (such as U+202E, U+200B, U+FEFF)")]
    FormatCharacter,
}

/// Unicode format characters (general category Cf: bidirectional controls, zero-width
/// characters, the byte order mark, soft hyphen, invisible operators) that make text
/// display other than it reads. Refused in file names and node regions.
pub fn is_format_char(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

impl FileName {
    pub fn parse(raw: &str) -> Result<FileName, FileNameError> {
        if raw.is_empty() {
            return Err(FileNameError::Empty);
        }
        if raw.len() > 255 {
            return Err(FileNameError::TooLong);
        }
        if raw.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(FileNameError::BadCharacter);
        }
        if raw == "." || raw == ".." {
            return Err(FileNameError::DotName);
        }
        if raw.chars().any(is_format_char) {
            return Err(FileNameError::FormatCharacter);
        }
        Ok(FileName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_for_people() {
        assert_eq!(ByteSize::parse_human("1048576"), Ok(ByteSize(1_048_576)));
        assert_eq!(ByteSize::parse_human("10GiB"), Ok(ByteSize(10 << 30)));
        assert_eq!(ByteSize::parse_human(" 1.5 KiB "), Ok(ByteSize(1536)));
        assert_eq!(ByteSize::parse_human("500MB"), Ok(ByteSize(500_000_000)));
        assert!(ByteSize::parse_human("10 parsecs").is_err());
        assert!(ByteSize::parse_human("GiB").is_err());
        assert!(ByteSize::parse_human("-5").is_err());
        assert!(ByteSize::parse_human("99999999999TiB").is_err());
        assert_eq!(ByteSize(1023).human(), "1023 B");
        assert_eq!(ByteSize(76_311_453_696).human(), "71.1 GiB");
    }

    #[test]
    fn md5_parses_hex_only() {
        let m: Md5 = "D41D8CD98F00B204E9800998ECF8427E".parse().expect("valid");
        assert_eq!(m.to_string(), "d41d8cd98f00b204e9800998ecf8427e");
        assert!("d41d8cd98f00b204e9800998ecf8427".parse::<Md5>().is_err());
        assert!("zz1d8cd98f00b204e9800998ecf8427e".parse::<Md5>().is_err());
    }

    #[test]
    fn file_names_refuse_traversal_and_nul() {
        assert!(FileName::parse("some-image.png").is_ok());
        assert!(FileName::parse("..").is_err());
        assert!(FileName::parse("../etc/passwd").is_err());
        assert!(FileName::parse("a\0b").is_err());
        assert!(FileName::parse("").is_err());
        for bad in ["invoice\u{202E}txt.exe", "a\u{200B}b", "\u{FEFF}x", "x\u{2066}y"] {
            assert!(matches!(FileName::parse(bad), Err(FileNameError::FormatCharacter)), "{bad:?}");
        }
        assert!(FileName::parse("résumé 2024 (final).pdf").is_ok());
        assert!(FileName::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn node_relpath_is_sharded_by_uuid_prefix() {
        let id: FileId = "0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f".parse().expect("uuid");
        assert_eq!(id.node_relpath(), "0b/0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f");
    }
}
