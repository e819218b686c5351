//! Tracked commits: which offset of each assigned partition may be committed.
//!
//! A partition's offset is committed only past messages that are all settled, whatever
//! order their handlers finish in. Each assignment of a partition gets a new
//! generation; a message remembers the generation it was received in, and settling it
//! after its partition was revoked changes nothing, so the old owner never commits for
//! the new one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The commit state of the partitions a consumer holds.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    topics: HashMap<Arc<str>, Topic>,
    next_generation: u64,
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug)]
struct Partition {
    generation: u64,
    /// Offsets received and not yet committable, in receive order (ascending), each
    /// with whether it is settled.
    pending: VecDeque<(i64, bool)>,
    /// The next offset to commit: one past the last message of the settled prefix.
    settled_to: Option<i64>,
    /// The last offset handed to a commit.
    committed: Option<i64>,
}

/// One partition's offset to commit.
pub(crate) type Commit = (Arc<str>, i32, i64);

impl Tracker {
    /// The partition is ours from now on, in a new generation.
    pub(crate) fn assign(&mut self, topic: &str, partition: i32) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let entry = match self.topics.get_mut(topic) {
            Some(entry) => entry,
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topics.entry(Arc::clone(&name)).or_insert(Topic {
                    name,
                    partitions: HashMap::new(),
                })
            }
        };
        entry.partitions.insert(
            partition,
            Partition {
                generation,
                pending: VecDeque::new(),
                settled_to: None,
                committed: None,
            },
        );
    }

    /// The partition is no longer ours: returns the offset to commit for it (its
    /// settled prefix), and forgets it, so later settlements of its messages change
    /// nothing.
    pub(crate) fn revoke(&mut self, topic: &str, partition: i32) -> Option<Commit> {
        let entry = self.topics.get_mut(topic)?;
        let name = Arc::clone(&entry.name);
        let state = entry.partitions.remove(&partition)?;
        if entry.partitions.is_empty() {
            self.topics.remove(topic);
        }
        state.settled_to.map(|offset| (name, partition, offset))
    }

    /// Records a received message; returns the topic's shared name and the generation
    /// it belongs to, or `None` when the partition is not (or no longer) assigned.
    pub(crate) fn register(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<(Arc<str>, u64)> {
        let entry = self.topics.get_mut(topic)?;
        let state = entry.partitions.get_mut(&partition)?;
        if state
            .pending
            .back()
            .is_some_and(|(last, _)| *last >= offset)
        {
            // Offsets of one generation only grow; an older one is a stale fetch.
            return None;
        }
        state.pending.push_back((offset, false));
        Some((Arc::clone(&entry.name), state.generation))
    }

    /// Whether `generation` is still the partition's current one.
    pub(crate) fn is_current(&self, topic: &str, partition: i32, generation: u64) -> bool {
        self.topics
            .get(topic)
            .and_then(|entry| entry.partitions.get(&partition))
            .is_some_and(|state| state.generation == generation)
    }

    /// The message is settled; the committable offset moves past every settled message
    /// before the first unsettled one.
    pub(crate) fn settle(&mut self, topic: &str, partition: i32, generation: u64, offset: i64) {
        let Some(state) = self
            .topics
            .get_mut(topic)
            .and_then(|entry| entry.partitions.get_mut(&partition))
        else {
            return;
        };
        if state.generation != generation {
            return;
        }
        if let Ok(index) = state.pending.binary_search_by_key(&offset, |(o, _)| *o) {
            state.pending[index].1 = true;
        }
        while let Some(&(first, true)) = state.pending.front() {
            state.pending.pop_front();
            state.settled_to = Some(first + 1);
        }
    }

    /// The offsets that moved since the last call, marked as handed to a commit.
    pub(crate) fn take_commits(&mut self) -> Vec<Commit> {
        let mut commits = Vec::new();
        for entry in self.topics.values_mut() {
            let name = &entry.name;
            for (&partition, state) in entry.partitions.iter_mut() {
                if let Some(offset) = state.settled_to
                    && state.committed != Some(offset)
                {
                    state.committed = Some(offset);
                    commits.push((Arc::clone(name), partition, offset));
                }
            }
        }
        commits
    }

    /// Every assigned partition's settled offset, whether handed to a commit or not
    /// (for the final, synchronous commit).
    pub(crate) fn all_commits(&mut self) -> Vec<Commit> {
        let _ = self.take_commits();
        let mut commits = Vec::new();
        for entry in self.topics.values() {
            let name = &entry.name;
            for (&partition, state) in &entry.partitions {
                if let Some(offset) = state.settled_to {
                    commits.push((Arc::clone(name), partition, offset));
                }
            }
        }
        commits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker_with(offsets: &[i64]) -> (Tracker, u64) {
        let mut tracker = Tracker::default();
        tracker.assign("t", 0);
        let mut generation = 0;
        for &offset in offsets {
            generation = tracker.register("t", 0, offset).unwrap().1;
        }
        (tracker, generation)
    }

    #[test]
    fn an_ack_out_of_order_never_commits_past_an_unsettled_message() {
        let (mut tracker, generation) = tracker_with(&[10, 11, 12]);
        tracker.settle("t", 0, generation, 12);
        tracker.settle("t", 0, generation, 10);
        assert_eq!(tracker.take_commits(), vec![(Arc::from("t"), 0, 11)]);
        tracker.settle("t", 0, generation, 11);
        assert_eq!(tracker.take_commits(), vec![(Arc::from("t"), 0, 13)]);
        assert!(tracker.take_commits().is_empty());
    }

    #[test]
    fn settling_after_a_revoke_commits_nothing() {
        let (mut tracker, generation) = tracker_with(&[0, 1]);
        tracker.settle("t", 0, generation, 0);
        assert_eq!(tracker.revoke("t", 0), Some((Arc::from("t"), 0, 1)));
        tracker.assign("t", 0);
        tracker.settle("t", 0, generation, 1);
        assert!(!tracker.is_current("t", 0, generation));
        assert!(tracker.take_commits().is_empty());
    }

    #[test]
    fn unassigned_partitions_register_nothing() {
        let mut tracker = Tracker::default();
        assert_eq!(tracker.register("t", 3, 0), None);
        tracker.settle("t", 3, 1, 0);
        assert!(tracker.all_commits().is_empty());
    }
}
