//! Publish-to-receive stamps, the sequence tracking that counts lost and duplicated
//! messages, and MQTT topic filters.
//!
//! A stamp is who published (the client id), a sequence number per publishing connection and
//! topic (from 1), and the send time in microseconds since the Unix epoch (the wall clock, so
//! publisher and subscriber may be different processes on hosts with synchronised clocks).
//! MQTT 5 carries it in the user properties `ld-pub`, `ld-seq` and `ld-sent`; MQTT 3.1.1 has
//! no properties, so the payload starts with `ld:<seq>:<sent>:<publisher>;` and the receiver
//! strips it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Topics (or publisher and topic pairs) a connection keeps sequence state for.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) publisher: String,
    pub(super) seq: u64,
    pub(super) sent_us: u64,
}

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Stamp {
    /// The 3.1.1 prefix.
    pub(super) fn prefix(&self) -> String {
        let publisher = self.publisher.replace(';', "_");
        format!("ld:{}:{}:{publisher};", self.seq, self.sent_us)
    }

    /// The MQTT 5 user properties.
    pub(super) fn properties(&self) -> [(String, String); 3] {
        [
            ("ld-pub".into(), self.publisher.clone()),
            ("ld-seq".into(), self.seq.to_string()),
            ("ld-sent".into(), self.sent_us.to_string()),
        ]
    }

    /// Reads a 3.1.1 prefix: the stamp and where the payload starts.
    pub(super) fn from_prefix(payload: &[u8]) -> Option<(Stamp, usize)> {
        let rest = payload.strip_prefix(b"ld:")?;
        let end = rest.iter().take(160).position(|b| *b == b';')?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        let mut parts = text.splitn(3, ':');
        let seq = parts.next()?.parse().ok()?;
        let sent_us = parts.next()?.parse().ok()?;
        let publisher = parts.next()?.to_string();
        Some((
            Stamp {
                publisher,
                seq,
                sent_us,
            },
            3 + end + 1,
        ))
    }

    pub(super) fn from_properties(props: &[(String, String)]) -> Option<Stamp> {
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        Some(Stamp {
            publisher: get("ld-pub").unwrap_or("").to_string(),
            seq: get("ld-seq")?.parse().ok()?,
            sent_us: get("ld-sent")?.parse().ok()?,
        })
    }

    /// Publish-to-receive time, given when the message was received.
    pub(super) fn latency(&self, received_us: u64) -> Duration {
        Duration::from_micros(received_us.saturating_sub(self.sent_us))
    }
}

/// The next sequence number per topic of a publishing connection.
#[derive(Debug, Default)]
pub(super) struct Sequencer {
    next: HashMap<String, u64>,
}

impl Sequencer {
    /// The topic's next number; 0 (no sequence, latency only) past [`MAX_TRACKED`] topics.
    pub(super) fn next(&mut self, topic: &str) -> u64 {
        if let Some(n) = self.next.get_mut(topic) {
            *n += 1;
            return *n;
        }
        if self.next.len() >= MAX_TRACKED {
            return 0;
        }
        self.next.insert(topic.to_string(), 1);
        1
    }
}

/// What a received sequence number says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// In order, or the first of its publisher and topic.
    InOrder,
    /// This many numbers were skipped before it.
    Gap(u64),
    /// Already received.
    Duplicate,
    /// Late: it had been counted lost (a reordering); the loss is taken back.
    Late,
}

#[derive(Debug, Default, Clone, Copy)]
struct SeqState {
    highest: u64,
    /// Bit `i` set: `highest - 1 - i` was received.
    below: u64,
}

/// Received sequence numbers per topic and publisher, with the counts so far.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    seqs: HashMap<(String, String), SeqState>,
    pub(super) lost: HashMap<String, u64>,
    pub(super) duplicated: HashMap<String, u64>,
}

impl Tracker {
    pub(super) fn see(&mut self, topic: &str, s: &Stamp) -> Seen {
        if s.seq == 0 {
            return Seen::InOrder;
        }
        let key = (topic.to_string(), s.publisher.clone());
        let Some(st) = self.seqs.get_mut(&key) else {
            if self.seqs.len() < MAX_TRACKED {
                self.seqs.insert(
                    key,
                    SeqState {
                        highest: s.seq,
                        below: 0,
                    },
                );
            }
            return Seen::InOrder;
        };
        let seen = if s.seq > st.highest {
            let step = s.seq - st.highest;
            st.below = if step >= 64 { 0 } else { st.below << step };
            if step <= 64 {
                st.below |= 1 << (step - 1);
            }
            st.highest = s.seq;
            if step == 1 {
                Seen::InOrder
            } else {
                Seen::Gap(step - 1)
            }
        } else if s.seq == st.highest {
            Seen::Duplicate
        } else {
            let d = st.highest - s.seq;
            let bit = 1u64.checked_shl((d - 1) as u32).unwrap_or(0);
            if bit == 0 || st.below & bit != 0 {
                Seen::Duplicate
            } else {
                st.below |= bit;
                Seen::Late
            }
        };
        match seen {
            Seen::Gap(n) => *self.lost.entry(topic.to_string()).or_default() += n,
            Seen::Duplicate => *self.duplicated.entry(topic.to_string()).or_default() += 1,
            Seen::Late => {
                if let Some(n) = self.lost.get_mut(topic) {
                    *n = n.saturating_sub(1);
                }
            }
            Seen::InOrder => {}
        }
        seen
    }
}

/// Whether `topic` matches `filter` (`+` one level, `#` the rest; `$` topics only by name).
pub(super) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A topic filter as MQTT allows it: `#` only last and alone in its level, `+` alone.
pub(super) fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains('#') && !l.contains('+'),
    })
}

/// A topic name to publish to: no wildcards.
pub(super) fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains('#') && !topic.contains('+')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            publisher: "p".into(),
            seq,
            sent_us: 1,
        }
    }

    #[test]
    fn filters_match_like_a_broker() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("#", "x/y"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(valid_filter("a/+/#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b#"));
        assert!(!valid_topic("a/+"));
    }

    #[test]
    fn prefixes_round_trip() {
        let s = Stamp {
            publisher: "ld-1".into(),
            seq: 7,
            sent_us: 1_700_000_000_000_000,
        };
        let mut payload = s.prefix().into_bytes();
        payload.extend_from_slice(b"hello");
        let (back, at) = Stamp::from_prefix(&payload).expect("a stamp");
        assert_eq!(back, s);
        assert_eq!(&payload[at..], b"hello");
        assert!(Stamp::from_prefix(b"hello").is_none());
        assert_eq!(Stamp::from_properties(&s.properties()), Some(s));
    }

    #[test]
    fn gaps_duplicates_and_late_messages_are_counted() {
        let mut t = Tracker::default();
        assert_eq!(t.see("t", &stamp(1)), Seen::InOrder);
        assert_eq!(t.see("t", &stamp(2)), Seen::InOrder);
        assert_eq!(t.see("t", &stamp(5)), Seen::Gap(2));
        assert_eq!(t.see("t", &stamp(5)), Seen::Duplicate);
        assert_eq!(t.see("t", &stamp(3)), Seen::Late);
        assert_eq!(t.see("t", &stamp(3)), Seen::Duplicate);
        assert_eq!(t.see("t", &stamp(2)), Seen::Duplicate);
        assert_eq!(t.lost.get("t"), Some(&1));
        assert_eq!(t.duplicated.get("t"), Some(&3));
        let mut q = Sequencer::default();
        assert_eq!((q.next("a"), q.next("a"), q.next("b")), (1, 2, 1));
    }
}
