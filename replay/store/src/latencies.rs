//! Latencies of one request name, cheap for names that are seen a few times: the first
//! [`FEW`] values are kept as they are, and only past them does the name get an HDR
//! histogram (1 µs to one hour, three significant figures), grown as its values need. A plan
//! may have as many names as tasks; most of them are seen once per iteration.
//!
//! Figures read through [`Latencies::histogram`] are the histogram's, whichever form the
//! values are kept in, so a name's percentiles do not depend on how many values it has.

use std::borrow::Cow;

use hdrhistogram::Histogram;

/// Values kept as they are before a histogram is made.
const FEW: usize = 32;
/// The largest latency recorded, in µs (one hour); larger ones count as it.
const HIGHEST_US: u64 = 3_600_000_000;

/// The latencies of one name, in µs.
#[derive(Debug, Clone)]
pub enum Latencies {
    Few(Vec<u32>),
    Many(Box<Histogram<u64>>),
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::Few(Vec::new())
    }
}

/// An empty histogram at the smallest size, grown as values need it.
fn grown() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    let mut h = Histogram::new_with_bounds(1, 2, 3).expect("valid histogram bounds");
    h.auto(true);
    h
}

fn put(h: &mut Histogram<u64>, us: u64) {
    // Within the bounds and growable: recording cannot fail.
    let _ = h.record(us.clamp(1, HIGHEST_US));
}

impl Latencies {
    pub fn record(&mut self, us: u64) {
        match self {
            Latencies::Few(v) if v.len() < FEW => {
                v.push(u32::try_from(us.clamp(1, HIGHEST_US)).unwrap_or(u32::MAX));
            }
            Latencies::Few(v) => {
                let mut h = grown();
                for x in v.iter() {
                    put(&mut h, u64::from(*x));
                }
                put(&mut h, us);
                *self = Latencies::Many(Box::new(h));
            }
            Latencies::Many(h) => put(h, us),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Latencies::Few(v) => v.len() as u64,
            Latencies::Many(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as a histogram: borrowed once there is one, else made from the values.
    pub fn histogram(&self) -> Cow<'_, Histogram<u64>> {
        match self {
            Latencies::Many(h) => Cow::Borrowed(h),
            Latencies::Few(v) => {
                let mut h = grown();
                for x in v {
                    put(&mut h, u64::from(*x));
                }
                Cow::Owned(h)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_and_many_values_read_as_one_full_range_histogram() {
        #[allow(clippy::expect_used)]
        let mut full = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3).expect("bounds");
        let mut l = Latencies::default();
        for i in 0..200u64 {
            let v = 1 + i * i * 97 % 3_000_000;
            l.record(v);
            full.record(v).expect("in range");
            if i == 10 {
                assert!(matches!(l, Latencies::Few(_)));
                assert_eq!(l.histogram().value_at_quantile(0.5), {
                    let mut f = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3).expect("b");
                    for j in 0..=10u64 {
                        f.record(1 + j * j * 97 % 3_000_000).expect("r");
                    }
                    f.value_at_quantile(0.5)
                });
            }
        }
        assert!(matches!(l, Latencies::Many(_)));
        let h = l.histogram();
        assert_eq!(h.len(), full.len());
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(h.value_at_quantile(q), full.value_at_quantile(q), "{q}");
        }
        assert_eq!(h.max(), full.max());
    }
}
