//! proptest strategies for what the protocol carries: valid names, wire integers,
//! sequence numbers, times, hashes, reject reasons (those of today and the shape of a
//! later release's) and reports. Every value they make is valid, so a property that
//! fails is fts's, not the generator's.

use fts_proto::{
    ClientId, FileHash, FileName, GroupName, MAX_WIRE_INT, Published, RejectReason, Report, Seq, Target,
};
use proptest::prelude::*;

/// An integer a header may carry, weighted towards small values and the maximum.
pub fn wire_int() -> impl Strategy<Value = u64> {
    prop_oneof![0..=100u64, 0..=MAX_WIRE_INT, Just(MAX_WIRE_INT)]
}

/// A sequence number (never 0).
pub fn seq() -> impl Strategy<Value = Seq> {
    prop_oneof![1..=100u64, 1..=MAX_WIRE_INT].prop_filter_map("a seq starts at 1", Seq::new)
}

/// A client id (the reserved words filtered out).
pub fn client_id() -> impl Strategy<Value = ClientId> {
    "[a-z0-9][a-z0-9._-]{0,62}".prop_filter_map("reserved word", |s| ClientId::parse(&s).ok())
}

/// A group name.
pub fn group_name() -> impl Strategy<Value = GroupName> {
    "[a-z0-9][a-z0-9._-]{0,62}".prop_filter_map("a group name", |s| GroupName::parse(&s).ok())
}

/// A target: a client, `all` or a group.
pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![client_id().prop_map(Target::Client), Just(Target::All), group_name().prop_map(Target::Group)]
}

/// A file name, up to the protocol's 200 characters.
pub fn file_name() -> impl Strategy<Value = FileName> {
    "[A-Za-z0-9][A-Za-z0-9._+-]{0,199}".prop_filter_map("a file name", |s| FileName::parse(&s).ok())
}

/// A publication time, 1970 to the end of 9999.
pub fn published() -> impl Strategy<Value = Published> {
    (0..=253_402_300_799u64).prop_map(Published::from_unix_seconds)
}

/// A SHA-256 file hash.
pub fn file_hash() -> impl Strategy<Value = FileHash> {
    any::<[u8; 32]>().prop_map(FileHash::from_digest)
}

/// A reject reason: one of today's, or one a later release may send.
pub fn reason() -> impl Strategy<Value = RejectReason> {
    let known = prop_oneof![
        Just(RejectReason::BadHeader),
        Just(RejectReason::BadName),
        Just(RejectReason::WrongTarget),
        Just(RejectReason::Replay),
        Just(RejectReason::Gap),
        Just(RejectReason::UntrustedKey),
        Just(RejectReason::Signature),
        Just(RejectReason::Superseded),
        Just(RejectReason::TooLarge),
        Just(RejectReason::HashMismatch),
        Just(RejectReason::InstallFailed),
        Just(RejectReason::HookFailed),
    ];
    let newer = "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,3}".prop_filter_map("a known reason", |s| {
        match RejectReason::parse(&s) {
            Some(RejectReason::Other(s)) => Some(RejectReason::Other(s)),
            _ => None,
        }
    });
    prop_oneof![4 => known, 1 => newer]
}

/// A report as a request carries it (its seq is the server's claim: 0 included).
pub fn report() -> impl Strategy<Value = Report> {
    (target(), wire_int(), reason(), proptest::option::of(1..=MAX_WIRE_INT))
        .prop_map(|(target, seq, reason, attempt)| Report { attempt, ..Report::new(target, seq, reason) })
}
