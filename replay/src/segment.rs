//! Execution segments: one share of a plan, so that N processes on N machines together run
//! exactly the plan.
//!
//! Everything a plan counts is numbered in one sequence (virtual users in the order they
//! start, open-model arrivals in the order they are due, CSV rows in the order they are
//! taken), and segment `index` of `count` takes the numbers `k` with `k % count == index`:
//! the numbers are striped over the segments, as k6's execution segments stripe VUs and
//! iterations. A user keeps its number in the whole plan, so it starts when it would have
//! started in one process, ramps and stages included, its random choices (`--seed`) are
//! those it would have made there, and the segments' users, arrivals and rows add up to the
//! plan's exactly.

/// Segment `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u64,
    pub count: u64,
}

/// The most segments a plan is split into.
pub(crate) const MAX_SEGMENTS: u64 = 10_000;

impl Default for Segment {
    fn default() -> Self {
        Segment::WHOLE
    }
}

impl Segment {
    /// The whole plan.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// `INDEX/COUNT`, the index from 0: `0/4` is the first of four.
    pub fn parse(text: &str) -> Result<Segment, String> {
        let (i, n) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("invalid segment `{text}`: expected INDEX/COUNT, e.g. 0/4"))?;
        let index: u64 = i.trim().parse().map_err(|_| {
            format!("invalid segment `{text}`: the index `{i}` is not a whole number")
        })?;
        let count: u64 = n.trim().parse().map_err(|_| {
            format!("invalid segment `{text}`: the count `{n}` is not a whole number")
        })?;
        Segment::new(index, count).map_err(|e| format!("invalid segment `{text}`: {e}"))
    }

    /// Segment `index` of `count`, checked.
    pub fn new(index: u64, count: u64) -> Result<Segment, String> {
        if count == 0 || count > MAX_SEGMENTS {
            return Err(format!("the count must be 1 to {MAX_SEGMENTS}"));
        }
        if index >= count {
            return Err(format!(
                "the index must be 0 to {} (segments are numbered from 0, as an Indexed Job's JOB_COMPLETION_INDEX)",
                count - 1
            ));
        }
        Ok(Segment { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether number `k` of the plan's sequence is this segment's.
    pub fn owns(&self, k: u64) -> bool {
        k % self.count == self.index
    }

    /// How many of the numbers `0..n` are this segment's.
    pub fn share(&self, n: u64) -> u64 {
        if n > self.index {
            (n - self.index - 1) / self.count + 1
        } else {
            0
        }
    }

    /// The plan's number of this segment's `i`-th one.
    pub fn nth(&self, i: u64) -> u64 {
        self.index + i * self.count
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole_for_every_split() {
        for count in 1..=9u64 {
            for n in 0..=50u64 {
                let total: u64 = (0..count)
                    .map(|index| Segment { index, count }.share(n))
                    .sum();
                assert_eq!(total, n, "{n} split {count} ways");
                for index in 0..count {
                    let s = Segment { index, count };
                    let owned = (0..n).filter(|k| s.owns(*k)).count() as u64;
                    assert_eq!(s.share(n), owned);
                    for i in 0..s.share(n) {
                        assert!(s.nth(i) < n && s.owns(s.nth(i)));
                    }
                }
            }
        }
    }

    #[test]
    fn parse_checks_bounds() {
        assert_eq!(Segment::parse("2/4"), Ok(Segment { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(Segment::parse(bad).is_err(), "{bad}");
        }
        assert!(Segment::parse("4/4").expect_err("4/4").contains("0 to 3"));
    }
}
