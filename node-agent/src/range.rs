//! Parsing a request's `Range` header (RFC 9110 §14.2) against a representation of
//! known length. Pure, so it is unit- and property-tested: the header is untrusted
//! client input and the result decides which bytes of a file are read.

/// What to send for a `Range` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable single range (absent, malformed, another unit, or several ranges):
    /// send it all, 200.
    Full,
    /// One satisfiable range, inclusive bounds, always `start <= end < len`: 206.
    Partial { start: u64, end: u64 },
    /// Syntactically valid but no byte of it exists: 416.
    Unsatisfiable,
}

impl RangeOutcome {
    /// Bytes of a `len`-byte representation this outcome sends.
    pub fn byte_count(self, len: u64) -> u64 {
        match self {
            RangeOutcome::Full => len,
            RangeOutcome::Partial { start, end } => end - start + 1,
            RangeOutcome::Unsatisfiable => 0,
        }
    }
}

/// Interprets `header` for a representation of `len` bytes.
///
/// A syntactically invalid header is ignored (full 200), as RFC 9110 §14.2 requires.
/// A request for several ranges is also answered with the whole file, which the RFC
/// allows (a server may ignore `Range`): it keeps the agent free of
/// `multipart/byteranges` bodies that no downloader of whole large files needs.
pub fn parse(header: Option<&str>, len: u64) -> RangeOutcome {
    let Some((unit, set)) = header.and_then(|h| h.split_once('=')) else {
        return RangeOutcome::Full;
    };
    // Range units are case-insensitive (RFC 9110 §14.1).
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    // A list may carry empty elements, which a recipient must accept and skip
    // (RFC 9110 §5.6.1).
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match position(suffix) {
            None => RangeOutcome::Full,
            // `bytes=-0` and any suffix of an empty file select no byte.
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if len == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial { start: len.saturating_sub(n), end: len - 1 },
        },
        (start, "") => match position(start) {
            None => RangeOutcome::Full,
            Some(start) if start >= len => RangeOutcome::Unsatisfiable,
            Some(start) => RangeOutcome::Partial { start, end: len - 1 },
        },
        (start, end) => match (position(start), position(end)) {
            // `last < first` is invalid syntax, hence ignored rather than a 416.
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

/// A `1*DIGIT` position. Values beyond `u64` are valid syntax that no file reaches,
/// so they saturate: a huge first byte is unsatisfiable, a huge last byte or suffix
/// means "to the end".
fn position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(header: &str, len: u64) -> RangeOutcome {
        parse(Some(header), len)
    }

    fn part(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial { start, end }
    }

    #[test]
    fn single_ranges_in_every_form() {
        assert_eq!(parse(None, 10), RangeOutcome::Full);
        assert_eq!(p("bytes=0-0", 10), part(0, 0));
        assert_eq!(p("bytes=9-9", 10), part(9, 9));
        assert_eq!(p("bytes=0-9", 10), part(0, 9));
        assert_eq!(p("bytes=5-", 10), part(5, 9));
        assert_eq!(p("bytes=-3", 10), part(7, 9));
        assert_eq!(p("bytes=-10", 10), part(0, 9));
        assert_eq!(p("bytes=-30", 10), part(0, 9));
        assert_eq!(p("bytes=3-100", 10), part(3, 9));
    }

    #[test]
    fn tolerated_spellings() {
        assert_eq!(p("Bytes=1-2", 10), part(1, 2));
        assert_eq!(p("BYTES=1-2", 10), part(1, 2));
        assert_eq!(p(" bytes=1-2 ", 10), part(1, 2));
        assert_eq!(p("bytes= 1 - 2", 10), part(1, 2));
        assert_eq!(p("bytes=1-2,", 10), part(1, 2));
        assert_eq!(p("bytes=, 1-2", 10), part(1, 2));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(p("bytes=10-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=10-20", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=99999999999999999999999-", 10), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn positions_beyond_u64_saturate() {
        assert_eq!(p("bytes=2-99999999999999999999999", 10), part(2, 9));
        assert_eq!(p("bytes=-99999999999999999999999", 10), part(0, 9));
    }

    #[test]
    fn invalid_or_multiple_ranges_are_ignored() {
        for header in [
            "bytes=0-1,4-5",
            "bytes=5-3",
            "items=0-1",
            "bytes=x-1",
            "bytes=1-x",
            "bytes=-",
            "bytes=",
            "bytes",
            "bytes=1",
            "bytes=+1-2",
            "bytes=-+2",
            "bytes=1-2-3",
            "bytes=0x1-2",
            "",
        ] {
            assert_eq!(p(header, 10), RangeOutcome::Full, "{header:?}");
        }
    }

    #[test]
    fn byte_counts() {
        assert_eq!(RangeOutcome::Full.byte_count(10), 10);
        assert_eq!(part(3, 3).byte_count(10), 1);
        assert_eq!(part(0, 9).byte_count(10), 10);
        assert_eq!(RangeOutcome::Unsatisfiable.byte_count(10), 0);
    }

    fn in_bounds(outcome: RangeOutcome, len: u64) -> bool {
        match outcome {
            RangeOutcome::Partial { start, end } => start <= end && end < len,
            RangeOutcome::Full | RangeOutcome::Unsatisfiable => true,
        }
    }

    proptest! {
        #[test]
        fn any_text_never_panics_and_stays_in_bounds(header in "\\PC{0,40}", len in any::<u64>()) {
            prop_assert!(in_bounds(parse(Some(&header), len), len));
        }

        // Random text rarely looks like a range; this grammar-shaped input reaches
        // every branch, including overflowing and reversed positions.
        #[test]
        fn range_shaped_text_never_panics_and_stays_in_bounds(
            header in "(?i)(bytes|items)? ?= ?[0-9]{0,22} ?- ?[0-9]{0,22}(, ?[0-9]{0,3}-[0-9]{0,3})?",
            len in prop_oneof![0u64..16, any::<u64>()],
        ) {
            prop_assert!(in_bounds(parse(Some(&header), len), len));
        }

        #[test]
        fn closed_ranges_round_trip(len in 1u64..u64::MAX, a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (a % len, b % len);
            let (s, e) = (x.min(y), x.max(y));
            prop_assert_eq!(p(&format!("bytes={s}-{e}"), len), part(s, e));
        }

        #[test]
        fn open_ranges_run_to_the_end(len in 1u64..u64::MAX, a in any::<u64>()) {
            let s = a % len;
            prop_assert_eq!(p(&format!("bytes={s}-"), len), part(s, len - 1));
        }

        #[test]
        fn suffixes_take_the_last_bytes(len in 1u64..u64::MAX, n in 1u64..u64::MAX) {
            let outcome = p(&format!("bytes=-{n}"), len);
            prop_assert_eq!(outcome, part(len.saturating_sub(n), len - 1));
            prop_assert_eq!(outcome.byte_count(len), n.min(len));
        }

        #[test]
        fn ranges_starting_past_the_end_are_unsatisfiable(len in 0u64..1 << 40, extra in 0u64..1 << 20) {
            prop_assert_eq!(p(&format!("bytes={}-", len + extra), len), RangeOutcome::Unsatisfiable);
        }
    }
}
