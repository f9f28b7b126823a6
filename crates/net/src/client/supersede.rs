//! Supersession within one answer (PROTOCOL.md section 8.2): a `superseded` frame
//! says that entry N of a target need not be installed because a later entry M of the
//! same file follows in the same answer. N is applied only once M is installed (or
//! found already installed) in that answer: a server that names an M and then
//! withholds it gets nothing applied, and the host still waits for N (and its
//! `withheld` alarm says so). [`Deferred`] keeps, for the answer being read, how far
//! each target has got and which superseded entries still wait for their M; the
//! state's `since` moves only when nothing waits, so it never claims an entry that
//! was neither installed nor superseded by an installed one.

use std::collections::BTreeMap;

use fts_proto::{Seq, Target};

/// The supersessions of the answer being read.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Per target with a waiting entry, the last seq taken in this answer.
    reached: BTreeMap<Target, Seq>,
    /// Per target, each superseded entry taken with the seq of the entry that
    /// supersedes it: (N, M).
    waiting: BTreeMap<Target, Vec<(Seq, Seq)>>,
}

impl Deferred {
    /// The seq the next frame of `target` must carry, given the state's `since`.
    pub(crate) fn next(&self, target: &Target, since: u64) -> Option<Seq> {
        Seq::after(self.reached.get(target).map_or(since, |seq| seq.get()))
    }

    /// Whether a superseded entry of `target` waits for its superseding one.
    pub(crate) fn is_waiting(&self, target: &Target) -> bool {
        self.waiting.contains_key(target)
    }

    /// Takes entry `n` of `target` as superseded by its entry `m`, pending `m`.
    pub(crate) fn defer(&mut self, target: &Target, n: Seq, m: Seq) {
        self.waiting.entry(target.clone()).or_default().push((n, m));
        self.reached.insert(target.clone(), n);
    }

    /// Records entry `seq` of `target` done (installed, or applied without an
    /// install). Returns the seq the state's `since` may move to: `seq` itself when
    /// nothing of the target waits any more, else `None`.
    pub(crate) fn done(&mut self, target: &Target, seq: Seq) -> Option<Seq> {
        let Some(waiting) = self.waiting.get_mut(target) else { return Some(seq) };
        waiting.retain(|&(_, m)| m != seq);
        if waiting.is_empty() {
            self.waiting.remove(target);
            self.reached.remove(target);
            Some(seq)
        } else {
            self.reached.insert(target.clone(), seq);
            None
        }
    }

    /// Ends the answer: the superseded entries whose superseding one never came,
    /// as (target, N, M). None of them was applied.
    pub(crate) fn finish(&mut self) -> Vec<(Target, Seq, Seq)> {
        self.reached.clear();
        std::mem::take(&mut self.waiting)
            .into_iter()
            .flat_map(|(target, waiting)| waiting.into_iter().map(move |(n, m)| (target.clone(), n, m)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: u64) -> Seq {
        Seq::new(n).unwrap()
    }

    #[test]
    fn since_moves_only_when_every_superseded_entry_has_its_successor_installed() {
        let web = Target::parse("web-01").unwrap();
        let mut deferred = Deferred::default();
        assert_eq!(deferred.next(&web, 4), Some(seq(5)));
        // 5 (a) superseded by 7 (a), 6 (b) by 8 (b); then 7 and 8 arrive.
        deferred.defer(&web, seq(5), seq(7));
        deferred.defer(&web, seq(6), seq(8));
        assert_eq!(deferred.next(&web, 4), Some(seq(7)));
        assert_eq!(deferred.done(&web, seq(7)), None, "6 still waits for 8");
        assert_eq!(deferred.next(&web, 4), Some(seq(8)));
        assert_eq!(deferred.done(&web, seq(8)), Some(seq(8)));
        assert!(!deferred.is_waiting(&web));
        assert_eq!(deferred.next(&web, 8), Some(seq(9)));
    }

    #[test]
    fn a_successor_that_never_comes_leaves_its_superseded_entry_unapplied() {
        let web = Target::parse("web-01").unwrap();
        let mut deferred = Deferred::default();
        deferred.defer(&web, seq(1), seq(3));
        assert_eq!(deferred.done(&web, seq(2)), None);
        assert_eq!(deferred.finish(), vec![(web.clone(), seq(1), seq(3))]);
        assert_eq!(deferred.next(&web, 0), Some(seq(1)), "the state's since is where it was");
    }
}
