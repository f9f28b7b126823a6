//! The heads tree: presence and absence proofs for random head maps verify, forged
//! ones fail, and the project's own vectors (`tests/vectors/heads.json`) are both
//! regenerated from `HeadsTree` (the file must match exactly) and verified case by
//! case. `FTS_WRITE_VECTORS=1 cargo test -p fts-log --test heads` rewrites the file.

use std::collections::BTreeMap;
use std::path::Path;

use fts_log::heads::{HeadProofError, HeadsTree, head_leaf, verify_head};
use fts_log::merkle::{empty_root, leaf_hash};
use fts_proto::{HeadLeafProof, HeadProof, LogHash, Target};
use proptest::prelude::*;
use serde_json::{Value, json};

fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn present(tree: &HeadsTree, target: &Target) -> HeadLeafProof {
    match tree.prove(target) {
        HeadProof::Present(leaf) => leaf,
        other => panic!("{target} is not present: {other:?}"),
    }
}

/// Targets sorted by their bytes, as the tree's leaves are.
fn sorted(heads: &BTreeMap<Target, u64>) -> Vec<Target> {
    let mut v: Vec<Target> = heads.keys().cloned().collect();
    v.sort_by_key(|t| t.to_string());
    v
}

fn target_strategy() -> impl Strategy<Value = Target> {
    let id = "[a-z0-9][a-z0-9._-]{0,6}";
    prop_oneof![
        1 => Just("all".to_owned()),
        4 => id.prop_map(|s| s),
        3 => id.prop_map(|s| format!("group:{s}")),
    ]
    .prop_filter_map("a valid target", |s| Target::parse(&s).ok())
}

fn flip_bit(hash: &mut LogHash, bit: usize) {
    hash.0[bit / 8 % 32] ^= 1 << (bit % 8);
}

/// Every way to spoil an absence proof of `target` (not in the tree) must fail.
fn forged_absences_fail(
    tree: &HeadsTree,
    order: &[Target],
    target: &Target,
    before: &Option<HeadLeafProof>,
    after: &Option<HeadLeafProof>,
) {
    let (count, root) = (tree.count(), tree.root());
    let check = |b: Option<HeadLeafProof>, a: Option<HeadLeafProof>, what: &str| {
        let r = verify_head(count, &root, target, &HeadProof::Absent { before: b, after: a });
        assert!(r.is_err(), "{what} for {target}: {r:?}");
    };
    let leaf_at = |i: u64| present(tree, &order[i as usize]);
    // Swapped neighbours.
    if before.is_some() || after.is_some() {
        check(after.clone(), before.clone(), "swapped neighbours");
    }
    // A dropped neighbour.
    if before.is_some() {
        check(None, after.clone(), "no before");
    }
    if after.is_some() {
        check(before.clone(), None, "no after");
    }
    // Non-adjacent neighbours: widen either side.
    if let Some(b) = before {
        if b.index > 0 {
            check(Some(leaf_at(b.index - 1)), after.clone(), "before moved down");
        }
        let mut wrong_seq = b.clone();
        wrong_seq.seq += 1;
        check(Some(wrong_seq), after.clone(), "before with the wrong seq");
        for e in 0..b.proof.len() {
            let mut flipped = b.clone();
            flip_bit(&mut flipped.proof[e], e * 7 + 3);
            check(Some(flipped), after.clone(), "before with a bit flip");
        }
    }
    if let Some(a) = after {
        if a.index + 1 < count {
            check(before.clone(), Some(leaf_at(a.index + 1)), "after moved up");
        }
        let mut other_index = a.clone();
        other_index.index ^= 1;
        check(before.clone(), Some(other_index), "after with another index");
        for e in 0..a.proof.len() {
            let mut flipped = a.clone();
            flip_bit(&mut flipped.proof[e], e * 5 + 1);
            check(before.clone(), Some(flipped), "after with a bit flip");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn head_proofs_of_random_maps(
        heads in prop::collection::btree_map(target_strategy(), 0u64..1_000_000, 0..40),
        probes in prop::collection::vec(target_strategy(), 0..20),
        bit in 0usize..256,
    ) {
        let tree = HeadsTree::from_seqs(&heads);
        let (count, root) = (tree.count(), tree.root());
        prop_assert_eq!(count, heads.len() as u64);
        let order = sorted(&heads);

        // Every head is present with its seq, at its byte-order index.
        for (i, target) in order.iter().enumerate() {
            let seq = heads[target];
            let proof = tree.prove(target);
            prop_assert_eq!(verify_head(count, &root, target, &proof), Ok(Some(seq)));
            let HeadProof::Present(leaf) = proof else { panic!("not present") };
            prop_assert_eq!(leaf.index, i as u64);

            // Forgeries of a presence proof.
            let mut wrong_seq = leaf.clone();
            wrong_seq.seq = seq ^ 1;
            prop_assert!(verify_head(count, &root, target, &HeadProof::Present(wrong_seq)).is_err());
            for e in 0..leaf.proof.len() {
                let mut flipped = leaf.clone();
                flip_bit(&mut flipped.proof[e], bit);
                prop_assert!(verify_head(count, &root, target, &HeadProof::Present(flipped)).is_err());
            }
            let mut bad_root = root;
            flip_bit(&mut bad_root, bit);
            prop_assert!(verify_head(count, &bad_root, target, &HeadProof::Present(leaf.clone())).is_err());
            for other in order.iter().filter(|o| *o != target).take(3) {
                // This proof offered for another target.
                let r = verify_head(count, &root, other, &HeadProof::Present(leaf.clone()));
                prop_assert!(matches!(r, Err(HeadProofError::WrongTarget { .. })), "{:?}", r);
                // Another leaf's index and proof under this target's name.
                let theirs = present(&tree, other);
                let mut mixed = leaf.clone();
                mixed.index = theirs.index;
                mixed.proof = theirs.proof.clone();
                prop_assert!(verify_head(count, &root, target, &HeadProof::Present(mixed)).is_err());
                let mut mixed = theirs.clone();
                mixed.target = target.clone();
                prop_assert!(verify_head(count, &root, target, &HeadProof::Present(mixed)).is_err());
            }
            // A present target cannot be proven absent with its neighbours.
            let b = (i > 0).then(|| present(&tree, &order[i - 1]));
            let a = order.get(i + 1).map(|o| present(&tree, o));
            let r = verify_head(count, &root, target, &HeadProof::Absent { before: b.clone(), after: a.clone() });
            prop_assert!(r.is_err(), "absent {:?}", r);
            let r = verify_head(count, &root, target, &HeadProof::Absent { before: b, after: Some(leaf.clone()) });
            prop_assert!(r.is_err(), "absent {:?}", r);
            let r = verify_head(count, &root, target, &HeadProof::Absent { before: Some(leaf), after: a });
            prop_assert!(r.is_err(), "absent {:?}", r);
        }

        // Absent targets: random ones, one before all, one after all, and one just
        // after each head (its spelling + "0", between it and the next).
        let mut absent: Vec<Target> = probes;
        absent.push(t("0"));
        absent.push(t("zzzzzzzzzz"));
        absent.push(t("group:zzzzzzzzzz"));
        for target in &order {
            if let Ok(next) = Target::parse(&format!("{target}0")) {
                absent.push(next);
            }
        }
        for target in absent.iter().filter(|a| !heads.contains_key(*a)) {
            let proof = tree.prove(target);
            prop_assert_eq!(verify_head(count, &root, target, &proof), Ok(None), "{}", target);
            let HeadProof::Absent { before, after } = &proof else { panic!("not absent") };
            let spelling = target.to_string();
            let below = order.iter().filter(|o| o.to_string() < spelling).count();
            prop_assert_eq!(before.as_ref().map(|b| b.index), below.checked_sub(1).map(|b| b as u64));
            prop_assert_eq!(after.as_ref().map(|a| a.index), (below < order.len()).then_some(below as u64));
            forged_absences_fail(&tree, &order, target, before, after);
            // A neighbour's presence proof does not prove this target.
            if let Some(b) = before {
                prop_assert!(verify_head(count, &root, target, &HeadProof::Present(b.clone())).is_err());
            }
        }
    }
}

// The project's own vectors.

fn vector_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/heads.json")
}

fn case(target: &str, proof: &HeadProof, want_seq: Option<u64>) -> Value {
    json!({"target": target, "proof": proof, "want-err": false, "want-seq": want_seq})
}

fn bad_case(target: &str, proof: &HeadProof, why: &str) -> Value {
    json!({"target": target, "proof": proof, "want-err": true, "why": why})
}

/// The whole vector file, from `HeadsTree`.
fn expected_vectors() -> Value {
    let heads: BTreeMap<Target, u64> = [("all", 40), ("group:web", 3), ("web-01", 13), ("web-02", 1)]
        .into_iter()
        .map(|(s, n)| (t(s), n))
        .collect();
    let tree = HeadsTree::from_seqs(&heads);
    let leaves: Vec<Value> = sorted(&heads)
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let bytes = head_leaf(target, heads[target], &[]);
            json!({
                "index": i,
                "target": target,
                "seq": heads[target],
                "leaf": String::from_utf8(bytes.clone()).unwrap(),
                "leaf-hash": leaf_hash(&bytes),
            })
        })
        .collect();

    let mut cases = Vec::new();
    for name in ["all", "group:web", "web-01", "web-02"] {
        cases.push(case(name, &tree.prove(&t(name)), Some(heads[&t(name)])));
    }
    for name in ["aaa", "group:db", "group:zz", "zzz"] {
        cases.push(case(name, &tree.prove(&t(name)), None));
    }
    let leaf = |name: &str| present(&tree, &t(name));
    let mut wrong_seq = leaf("web-01");
    wrong_seq.seq = 14;
    cases.push(bad_case("web-01", &HeadProof::Present(wrong_seq), "the leaf's seq is 14, the tree has 13"));
    cases.push(bad_case(
        "web-02",
        &HeadProof::Present(leaf("web-01")),
        "a valid proof of another target (web-01)",
    ));
    let mut other_proof = leaf("web-02");
    other_proof.index = 2;
    other_proof.proof = leaf("web-01").proof;
    cases.push(bad_case(
        "web-02",
        &HeadProof::Present(other_proof),
        "web-02's leaf with web-01's index and proof",
    ));
    let mut flipped = leaf("web-01");
    flipped.proof[0].0[0] ^= 1;
    cases.push(bad_case("web-01", &HeadProof::Present(flipped), "one bit of proof[0] flipped"));
    cases.push(bad_case(
        "group:db",
        &HeadProof::Absent { before: Some(leaf("group:web")), after: Some(leaf("all")) },
        "neighbours swapped: they do not bracket the target",
    ));
    cases.push(bad_case(
        "group:db",
        &HeadProof::Absent { before: Some(leaf("all")), after: Some(leaf("web-01")) },
        "neighbours at indexes 0 and 2, not adjacent (group:web is between them)",
    ));
    cases.push(bad_case(
        "group:db",
        &HeadProof::Absent { before: None, after: Some(leaf("group:web")) },
        "no leaf before, but the leaf after is at index 1, not 0",
    ));
    cases.push(bad_case(
        "web-01",
        &HeadProof::Absent { before: Some(leaf("group:web")), after: Some(leaf("web-02")) },
        "web-01 is present: its neighbours are not adjacent",
    ));
    cases.push(bad_case(
        "zzz",
        &HeadProof::Absent { before: Some(leaf("web-01")), after: None },
        "no leaf after, but the leaf before is at index 2, not the last (3)",
    ));
    cases.push(bad_case(
        "zzz",
        &HeadProof::Absent { before: None, after: None },
        "no neighbours, but the tree has 4 leaves",
    ));

    let empty = HeadsTree::from_seqs(&BTreeMap::new());
    json!({
        "about": "fts heads tree vectors: see README.md beside this file",
        "heads": heads.iter().map(|(t, s)| (t.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
        "leaves": leaves,
        "count": tree.count(),
        "root": tree.root(),
        "cases": cases,
        "empty-tree": {
            "count": empty.count(),
            "root": empty.root(),
            "cases": [
                case("web-01", &empty.prove(&t("web-01")), None),
                bad_case(
                    "web-01",
                    &HeadProof::Absent { before: Some(leaf("web-01")), after: None },
                    "a leaf of another tree: index 2 is not below the count 0",
                ),
            ],
        },
    })
}

fn run_cases(count: u64, root: &LogHash, cases: &[Value]) -> usize {
    for c in cases {
        let target = t(c["target"].as_str().unwrap());
        let proof: HeadProof = serde_json::from_value(c["proof"].clone()).unwrap();
        let got = verify_head(count, root, &target, &proof);
        if c["want-err"].as_bool().unwrap() {
            assert!(got.is_err(), "{c}: {got:?}");
            assert!(!c["why"].as_str().unwrap().is_empty());
        } else {
            assert_eq!(got, Ok(c["want-seq"].as_u64()), "{c}");
        }
    }
    cases.len()
}

#[test]
fn head_vectors_are_regenerated_and_verify() {
    let want = expected_vectors();
    if std::env::var_os("FTS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&want).unwrap() + "\n";
        std::fs::write(vector_path(), text).unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(vector_path()).unwrap()).unwrap();
    assert_eq!(file, want, "tests/vectors/heads.json is not what HeadsTree gives");

    // The file read on its own terms, as another client would.
    let count = file["count"].as_u64().unwrap();
    let root = LogHash::parse(file["root"].as_str().unwrap()).unwrap();
    let leaves = file["leaves"].as_array().unwrap();
    assert_eq!(leaves.len() as u64, count);
    for l in leaves {
        let target = t(l["target"].as_str().unwrap());
        let bytes = head_leaf(&target, l["seq"].as_u64().unwrap(), &[]);
        assert_eq!(l["leaf"].as_str().unwrap().as_bytes(), bytes);
        assert_eq!(LogHash::parse(l["leaf-hash"].as_str().unwrap()).unwrap(), leaf_hash(&bytes));
    }
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(run_cases(count, &root, cases), 18);
    let empty = &file["empty-tree"];
    let empty_root_read = LogHash::parse(empty["root"].as_str().unwrap()).unwrap();
    assert_eq!(empty_root_read, empty_root());
    assert_eq!(
        run_cases(empty["count"].as_u64().unwrap(), &empty_root_read, empty["cases"].as_array().unwrap()),
        2
    );
}
