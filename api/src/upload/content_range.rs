//! `Content-Range: bytes START-END/TOTAL` for chunk uploads, in both forms Ferry must
//! accept: RFC 9110 (0-based, END inclusive, END < TOTAL) and the original service's
//! documented example (`bytes 1-32634/32634` for a 32634-byte file: END equal to TOTAL
//! marks the legacy 1-based form).

/// A chunk's place in the file, normalised to 0-based with an exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub total: u64,
    /// Sent in the original's 1-based form (END equal to TOTAL).
    pub one_based: bool,
}

impl ChunkRange {
    /// Bytes in the chunk; never zero (END >= START is enforced by the parser).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentRangeError {
    #[error("Content-Range must look like 'bytes START-END/TOTAL'")]
    Malformed,
    #[error("Content-Range END must not be before START, and the range must lie within TOTAL")]
    OutOfBounds,
}

pub fn parse(header: &str) -> Result<ChunkRange, ContentRangeError> {
    let rest = header.trim().strip_prefix("bytes").ok_or(ContentRangeError::Malformed)?;
    let rest = rest.strip_prefix([' ', '=']).ok_or(ContentRangeError::Malformed)?.trim_start();
    let (range, total) = rest.split_once('/').ok_or(ContentRangeError::Malformed)?;
    let (start, end) = range.split_once('-').ok_or(ContentRangeError::Malformed)?;
    let number = |s: &str| -> Result<u64, ContentRangeError> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ContentRangeError::Malformed);
        }
        s.parse().map_err(|_| ContentRangeError::Malformed)
    };
    let (start, end, total) = (number(start)?, number(end)?, number(total)?);
    if end < start || total == 0 {
        return Err(ContentRangeError::OutOfBounds);
    }
    if end == total {
        // Legacy 1-based inclusive form, as the original README documented it.
        if start == 0 {
            return Err(ContentRangeError::OutOfBounds);
        }
        return Ok(ChunkRange { start: start - 1, end, total, one_based: true });
    }
    if end > total {
        return Err(ContentRangeError::OutOfBounds);
    }
    Ok(ChunkRange { start, end: end + 1, total, one_based: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_form_is_zero_based_inclusive() {
        assert_eq!(parse("bytes 0-9/20"), Ok(ChunkRange { start: 0, end: 10, total: 20, one_based: false }));
        assert_eq!(parse("bytes 10-19/20"), Ok(ChunkRange { start: 10, end: 20, total: 20, one_based: false }));
        assert_eq!(parse("bytes 0-0/1"), Ok(ChunkRange { start: 0, end: 1, total: 1, one_based: false }));
    }

    #[test]
    fn legacy_form_from_the_original_readme() {
        assert_eq!(
            parse("bytes 1-32634/32634"),
            Ok(ChunkRange { start: 0, end: 32634, total: 32634, one_based: true })
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in
            ["", "bytes", "bytes 1-2", "bytes -1-2/3", "items 0-1/2", "bytes 0-1/x", "bytes 0-1/+2", "bytes */10"]
        {
            assert_eq!(parse(bad), Err(ContentRangeError::Malformed), "{bad:?}");
        }
        assert_eq!(parse("bytes 5-4/10"), Err(ContentRangeError::OutOfBounds));
        assert_eq!(parse("bytes 0-10/5"), Err(ContentRangeError::OutOfBounds));
        assert_eq!(parse("bytes 0-0/0"), Err(ContentRangeError::OutOfBounds));
        assert_eq!(parse("bytes 99999999999999999999-1/2"), Err(ContentRangeError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(s in "\\PC{0,40}") {
            if let Ok(r) = parse(&s) {
                prop_assert!(r.start < r.end && r.end <= r.total);
            }
        }

        #[test]
        fn accepts_every_valid_rfc_range(total in 1u64..u64::MAX / 2, a in any::<u64>(), b in any::<u64>()) {
            let (s, e) = { let x = a % total; let y = b % total; (x.min(y), x.max(y)) };
            let r = parse(&format!("bytes {s}-{e}/{total}"));
            prop_assert_eq!(r, Ok(ChunkRange { start: s, end: e + 1, total, one_based: false }));
        }
    }
}
