//! The node agent's `GET /health` answer, the one definition the agent serialises and
//! the monitor's probe parses.

use serde::{Deserialize, Serialize};

use crate::types::{ByteSize, FileId};

/// A node agent's report of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// `ok` (an agent that cannot stat its root answers 503 instead).
    pub status: String,
    /// Bytes an unprivileged writer (rsync as the ferry user) can still use on the
    /// filesystem holding the storage root.
    pub free_bytes: ByteSize,
    /// Size of that filesystem.
    pub total_bytes: ByteSize,
    /// Copies found corrupt while served (moved aside); the monitor marks these
    /// replicas failed so the repair replaces them.
    #[serde(default)]
    pub corrupt: Vec<FileId>,
    /// Why the agent's last write check of its storage root failed (one small file
    /// created, written, `fdatasync`ed and removed at the root, at most every few
    /// seconds); `None` when it passed. Its `statvfs` says nothing of this: a
    /// filesystem remounted read-only, an immutable root or a failing disk keeps its
    /// free space. An agent that does not check (older, or serving staging) sends none.
    #[serde(default)]
    pub write_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_plain_numbers_and_uuids() {
        let id: FileId = "0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f".parse().expect("uuid");
        let h = NodeHealth {
            status: "ok".into(),
            free_bytes: ByteSize(5),
            total_bytes: ByteSize(9),
            corrupt: vec![id],
            write_error: Some("read-only".into()),
        };
        let json = serde_json::to_value(&h).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"status": "ok", "free_bytes": 5, "total_bytes": 9,
                               "corrupt": ["0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f"], "write_error": "read-only"})
        );
        assert_eq!(serde_json::from_value::<NodeHealth>(json).expect("parse"), h);
        // An older agent without `corrupt` or `write_error` still parses (nothing
        // corrupt, writes not checked); a negative size does not.
        let old = serde_json::from_str::<NodeHealth>(r#"{"status":"ok","free_bytes":1,"total_bytes":2}"#);
        assert!(old.is_ok_and(|h| h.corrupt.is_empty() && h.write_error.is_none()));
        assert!(serde_json::from_str::<NodeHealth>(r#"{"status":"ok","free_bytes":-1,"total_bytes":2}"#).is_err());
    }
}
