//! Ids of records appended lately, by sequence number.
//!
//! An outcome or approval step names the decision it belongs to by id, and the store links
//! them by sequence number. A record id carries its sequence number, but only a record that
//! really has that id may be linked to, so the id must be checked against the stored record,
//! which is a read of the tree. Records are linked to soon after they are written, so the ids
//! of the last [`RECENT_IDS`] sequence numbers are kept in a ring indexed by sequence number:
//! remembering one is a copy of 26 bytes, and looking one up a comparison, with no hashing and
//! no allocation (an LRU map of strings was about a tenth of the audit writer's time).

/// Sequence numbers whose ids are remembered.
pub const RECENT_IDS: usize = 64 * 1024;

/// A record id as [`crate::audit::chain::record_id`] writes it: a ULID in Crockford base32.
const ID_LEN: usize = 26;

/// One slot: the sequence number it holds (0: none; records start at 1) and that record's id.
#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    id: [u8; ID_LEN],
}

pub struct RecentIds {
    slots: Box<[Slot]>,
}

impl RecentIds {
    pub fn new() -> RecentIds {
        RecentIds {
            slots: vec![
                Slot {
                    seq: 0,
                    id: [0; ID_LEN]
                };
                RECENT_IDS
            ]
            .into_boxed_slice(),
        }
    }

    fn slot(&self, seq: u64) -> usize {
        (seq % RECENT_IDS as u64) as usize
    }

    /// Remembers that record `seq` has id `id`, forgetting the record [`RECENT_IDS`] before
    /// it. An id of another shape is not remembered (a lookup then reads the tree).
    pub fn remember(&mut self, id: &str, seq: u64) {
        let at = self.slot(seq);
        match <[u8; ID_LEN]>::try_from(id.as_bytes()) {
            Ok(id) => self.slots[at] = Slot { seq, id },
            // Whatever the slot held is older, and no longer the newest at this position.
            Err(_) => self.slots[at].seq = 0,
        }
    }

    /// The sequence number of the record with id `id`, if it is remembered. `None` says
    /// nothing: the record may be older, or not exist.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        let seq = crate::audit::chain::seq_in_id(id)?;
        let slot = &self.slots[self.slot(seq)];
        (seq != 0 && slot.seq == seq && slot.id[..] == *id.as_bytes()).then_some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::record_id;

    #[test]
    fn an_id_is_found_until_its_slot_is_reused() {
        let mut recent = RecentIds::new();
        let first = record_id(1_700_000_000_000_000, 7);
        recent.remember(&first, 7);
        assert_eq!(recent.seq_of(&first), Some(7));
        let later = 7 + RECENT_IDS as u64;
        let second = record_id(1_700_000_000_000_000, later);
        recent.remember(&second, later);
        assert_eq!(recent.seq_of(&first), None);
        assert_eq!(recent.seq_of(&second), Some(later));
    }

    #[test]
    fn an_id_that_names_a_remembered_position_but_is_not_its_record_is_not_found() {
        let mut recent = RecentIds::new();
        let real = record_id(1_700_000_000_000_000, 42);
        recent.remember(&real, 42);
        // Same sequence number, other time and random bits: another id.
        let forged = record_id(1_700_000_000_123_000, 42);
        assert_ne!(forged, real);
        assert_eq!(recent.seq_of(&forged), None);
        assert_eq!(recent.seq_of("not an id"), None);
        assert_eq!(recent.seq_of(""), None);
    }

    #[test]
    fn an_id_of_another_shape_clears_its_slot() {
        let mut recent = RecentIds::new();
        let old = record_id(1_700_000_000_000_000, 5);
        recent.remember(&old, 5);
        recent.remember("short", 5 + RECENT_IDS as u64);
        assert_eq!(recent.seq_of(&old), None);
    }
}
