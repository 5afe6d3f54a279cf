//! Parsing a request's `Range` header (RFC 9110 §14.2) against a representation of
//! known length. Pure, so it is unit- and property-tested.

/// What to send for a `Range` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable single range (absent, malformed, or several ranges): send it all, 200.
    Full,
    /// One satisfiable range, inclusive bounds: 206.
    Partial { start: u64, end: u64 },
    /// Syntactically valid but no byte of it exists: 416.
    Unsatisfiable,
}

/// Interprets `header` for a representation of `len` bytes. Multi-range requests are
/// answered with the whole file (RFC 9110 allows ignoring Range), which keeps the
/// agent free of multipart/byteranges bodies no downloader here needs.
pub fn parse(header: Option<&str>, len: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeOutcome::Full,
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if len == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial { start: len.saturating_sub(n), end: len - 1 },
        },
        (start, "") => match number(start) {
            None => RangeOutcome::Full,
            Some(start) if start >= len => RangeOutcome::Unsatisfiable,
            Some(start) => RangeOutcome::Partial { start, end: len - 1 },
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    RangeOutcome::Unsatisfiable
                } else {
                    RangeOutcome::Partial { start, end: end.min(len - 1) }
                }
            }
            _ => RangeOutcome::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_usual_forms() {
        assert_eq!(parse(None, 10), RangeOutcome::Full);
        assert_eq!(parse(Some("bytes=0-0"), 10), RangeOutcome::Partial { start: 0, end: 0 });
        assert_eq!(parse(Some("bytes=9-9"), 10), RangeOutcome::Partial { start: 9, end: 9 });
        assert_eq!(parse(Some("bytes=5-"), 10), RangeOutcome::Partial { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), RangeOutcome::Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), RangeOutcome::Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=3-100"), 10), RangeOutcome::Partial { start: 3, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-20"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), RangeOutcome::Full);
        assert_eq!(parse(Some("bytes=5-3"), 10), RangeOutcome::Full);
        assert_eq!(parse(Some("items=0-1"), 10), RangeOutcome::Full);
        assert_eq!(parse(Some("bytes=x-1"), 10), RangeOutcome::Full);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeOutcome::Unsatisfiable);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(header in "\\PC{0,30}", len in 0u64..1_000_000) {
            if let RangeOutcome::Partial { start, end } = parse(Some(&header), len) {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn valid_ranges_round_trip(len in 1u64..1_000_000, a in any::<u64>(), b in any::<u64>()) {
            let (s, e) = { let x = a % len; let y = b % len; (x.min(y), x.max(y)) };
            prop_assert_eq!(parse(Some(&format!("bytes={s}-{e}")), len), RangeOutcome::Partial { start: s, end: e });
        }
    }
}
