//! Frames as an honest server of a sandbox's store would send them, for the scripted
//! hostile server's answers (withdrawals, supersessions): the `log` frame of web-01
//! (targets `web-01`, `all`, `group:web`) at log size 0, and an entry's header with its
//! leaf's proof.

use fts_log::merkle::Tree;
use fts_proto::{FileHeader, LogFrame, ServerFrame, Target};

use crate::common::Sandbox;

/// The `log` frame of `store/log/checkpoint` (or `note` when given: a cosigned one) and
/// the tree of the store's leaves.
pub fn honest_log(sandbox: &Sandbox, note: Option<String>) -> (Vec<u8>, Tree) {
    let note = note.unwrap_or_else(|| std::fs::read_to_string(sandbox.join("store/log/checkpoint")).unwrap());
    let file = std::fs::File::open(sandbox.join("store/log/leaves")).unwrap();
    let read = fts_store::log::read_leaves(&mut std::io::BufReader::new(file), 0).unwrap();
    let mut tree = Tree::new();
    let mut kinds = Vec::new();
    for leaf in &read.leaves {
        tree.push(fts_log::merkle::leaf_hash(leaf));
        kinds.push(fts_store::log::leaf_kind(leaf).expect("a leaf fts writes"));
    }
    let heads = fts_log::heads::HeadsTree::new(&fts_store::log::heads_of(&kinds));
    let mine = ["web-01", "all", "group:web"]
        .into_iter()
        .map(|t| Target::parse(t).unwrap())
        .map(|t| (t.clone(), heads.prove(&t)))
        .collect();
    let frame = ServerFrame::Log(LogFrame {
        checkpoint: note,
        consistency: Vec::new(),
        heads: mine,
        rotations: Vec::new(),
    });
    (frame.encode().unwrap(), tree)
}

/// `entry`'s header with its `log-index` and inclusion proof in `tree`.
pub fn logged_header(entry: &fts_store::Entry, tree: &Tree) -> FileHeader {
    let mut header = FileHeader::new(entry.statement.clone(), entry.key_id, entry.signature);
    header.log_index = Some(entry.position);
    header.inclusion = Some(tree.inclusion_proof(entry.position, tree.len()).unwrap());
    header
}
