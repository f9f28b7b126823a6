//! What the host knows of the log (docs/PROTOCOL.md section 7): the checkpoint it
//! recorded, the newest cosignature time it verified, each target's verified head,
//! and the alarms. It lives in its own file beside the state (`<state>.log`), so
//! that `--reset-state` keeps it: the log state only moves forward, and only
//! `--reset-log-state` starts it again (keeping the old checkpoint as evidence).
//!
//! An answer's `log` frame is checked whole before anything of the answer is
//! applied ([`LogBook::check_frame`]): the release key's signature, the origin, the
//! consistency proof from the recorded checkpoint, the cosignatures, a head proof
//! for each of the host's targets. Then each entry must prove its leaf in that
//! checkpoint ([`AnswerLog::check_entry`]), or it is refused as `not-logged`.
//!
//! Fail loud, never brick: a checkpoint that is consistent with the recorded one
//! lets every validly signed entry it proves be installed, whatever else is wrong;
//! the alarms (`stale`, `withheld`, `fork`, `clock`, `behind`) say what is wrong, in
//! the log at error, the metrics file, the next request and exit code 4.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::Duration;

use fts_fs::{Dir, FileMode, WriteOptions};
use fts_log::heads::verify_head;
use fts_log::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use fts_proto::checkpoint::{Checkpoint, Origin, statement_leaf};
use fts_proto::{
    AlarmName, ErrorChain, FileHeader, HeadProof, LogFrame, LogHash, Seq, Target, WithdrawStatement,
    WithdrawnFrame, signed_leaf,
};
use fts_trust::note::{
    TimestampPublic, verify_checkpoint, verify_checkpoint_any_origin, verify_cosignatures,
};
use fts_trust::{KeyRing, TrustedKeys, Verified};
use serde::{Deserialize, Serialize};

use crate::client::state::StateError;

/// The log state's format.
pub const LOG_STATE_FORMAT: u32 = 1;
/// A log state file larger than this is not read.
const MAX_LOG_STATE_FILE: u64 = 1 << 20;
/// Evidence files kept (the oldest go first).
pub const MAX_EVIDENCE: usize = 16;

const WRITE: WriteOptions =
    WriteOptions { label: "logstate", mode: FileMode::LessUmask(0o600), durable: true, overwrite: true };

/// The alarm names.
pub mod alarm {
    /// No fresh cosignature has reached the host within `--max-age`.
    pub const STALE: &str = "stale";
    /// A target has stayed behind its verified head for longer than `--withheld-after`.
    pub const WITHHELD: &str = "withheld";
    /// Two checkpoints that cannot both be the log: kept in an evidence file.
    pub const FORK: &str = "fork";
    /// A cosignature dated more than `--max-skew` ahead of the host's clock.
    pub const CLOCK: &str = "clock";
    /// The server sent a checkpoint smaller than the recorded one.
    pub const BEHIND: &str = "behind";
}

/// The host's log settings (`fts poll` flags).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `--log-origin`: the log's name; without it, the first checkpoint's is pinned.
    pub origin: Option<Origin>,
    /// `--log-checkpoint FILE`: a checkpoint note to start from, so that the first
    /// answer is already checked for consistency.
    pub initial_checkpoint: Option<String>,
    /// `--timestamp-key`: the cosigners whose signatures make an answer fresh. Empty:
    /// freshness is off (said at start).
    pub timestamp_keys: Vec<TimestampPublic>,
    /// `--max-age`.
    pub max_age: Duration,
    /// `--withheld-after`.
    pub withheld_after: Duration,
    /// `--max-skew`.
    pub max_skew: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            origin: None,
            initial_checkpoint: None,
            timestamp_keys: Vec::new(),
            max_age: Duration::from_secs(3600),
            withheld_after: Duration::from_secs(3600),
            max_skew: Duration::from_secs(300),
        }
    }
}

/// A raised alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Alarm {
    /// When it was first raised (Unix seconds).
    pub since: u64,
    /// What is wrong, in words.
    pub detail: String,
}

/// The log state file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogState {
    /// The format, [`LOG_STATE_FORMAT`].
    pub format: u32,
    /// The log's name, pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The recorded checkpoint's note, verbatim (evidence if another conflicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Its size (0: none verified yet).
    pub size: u64,
    /// Its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<LogHash>,
    /// The newest verified cosignature time (Unix seconds, never in the future
    /// beyond `--max-skew`): the host's freshness, never going back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attested: Option<u64>,
    /// When this host first asked for the log: the clock of `stale` before any
    /// cosignature arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_asked: Option<u64>,
    /// Per target, its head in the recorded checkpoint (absent: none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heads: BTreeMap<Target, u64>,
    /// Per target behind its head, since when (the clock of `withheld`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub behind_since: BTreeMap<Target, u64>,
    /// The raised alarms.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alarms: BTreeMap<AlarmName, Alarm>,
    /// The release keys as verified rotations left them (PROTOCOL.md section 8.3):
    /// absent until the first checkpoint that carries a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyRing>,
}

impl LogState {
    fn empty() -> LogState {
        LogState { format: LOG_STATE_FORMAT, ..LogState::default() }
    }

    /// Whether the host has verified a checkpoint: from then on every entry must be
    /// in the log.
    pub fn seen(&self) -> bool {
        self.size > 0
    }
}

/// How one answer stands with the log, once its first frame is read.
#[derive(Debug, Clone)]
pub enum AnswerLog {
    /// The answer's checkpoint verified: entries must prove their leaf in it.
    Verified {
        /// Its size.
        size: u64,
        /// Its root.
        root: LogHash,
        /// Its origin (what a withdrawal names).
        origin: Origin,
        /// Per target, the withdrawn seqs its verified head lists (PROTOCOL.md
        /// section 8.1): none of them is ever installed.
        withdrawn: Arc<BTreeMap<Target, Vec<Seq>>>,
        /// The release keys after the answer's rotations.
        keys: Arc<KeyRing>,
    },
    /// The answer had no `log` frame, and the host has never verified a checkpoint:
    /// validly signed entries install (and `stale` says the log was not seen).
    NotSeenYet,
    /// The answer cannot be checked against the log (the reason in words): every
    /// entry of it is refused as `not-logged`.
    Unproven(String),
    /// The answer contradicts the recorded log (`fork`, `behind`): nothing of it is
    /// applied; the answer ends here.
    Refused,
}

impl AnswerLog {
    /// Whether the entry of `header` may be applied: `Err` says why it is
    /// `not-logged`.
    pub fn check_entry(&self, header: &FileHeader) -> Result<(), String> {
        let (size, root) = match self {
            AnswerLog::Verified { size, root, .. } => (*size, *root),
            AnswerLog::NotSeenYet => return Ok(()),
            AnswerLog::Unproven(why) => return Err(why.clone()),
            AnswerLog::Refused => return Err("the answer's checkpoint was refused".into()),
        };
        let (Some(index), Some(proof)) = (header.log_index, &header.inclusion) else {
            return Err("the entry carries no inclusion proof".into());
        };
        let leaf = leaf_hash(&statement_leaf(&header.statement(), &header.key_id, &header.signature));
        verify_inclusion(index, size, &leaf, proof, &root)
            .map_err(|e| format!("its inclusion proof at leaf {index} of {size} fails: {e}"))
    }

    /// Whether the verified head of `target` lists `seq` as withdrawn.
    pub fn is_withdrawn(&self, target: &Target, seq: Seq) -> bool {
        match self {
            AnswerLog::Verified { withdrawn, .. } => withdrawn.get(target).is_some_and(|w| w.contains(&seq)),
            _ => false,
        }
    }

    /// Checks a `withdrawn` frame whose entry already passed [`Self::check_entry`]:
    /// the verified head lists it, the withdrawal's leaf (the statement for this
    /// log's origin and this entry's bytes) is in the checkpoint, and it is signed by
    /// a key the host trusts now. `Err` says why it is refused.
    pub fn check_withdrawal(&self, frame: &WithdrawnFrame) -> Result<WithdrawStatement, String> {
        let AnswerLog::Verified { size, root, origin, keys, .. } = self else {
            return Err("a withdrawal is accepted only in an answer whose checkpoint verified".into());
        };
        let entry = frame.entry.statement();
        if !self.is_withdrawn(&entry.target, entry.seq) {
            return Err("the verified head of its target does not list it as withdrawn".into());
        }
        let w = &frame.withdrawal;
        let statement = w.statement(origin, &entry, fts_log::statement_hash(&entry));
        let leaf = leaf_hash(&signed_leaf(&statement.to_bytes(), &w.key_id, &w.signature));
        verify_inclusion(w.log_index, *size, &leaf, &w.inclusion, root).map_err(|e| {
            format!("the withdrawal's inclusion proof at leaf {} of {size} fails: {e}", w.log_index)
        })?;
        keys.verify_withdrawal(statement, &w.key_id, &w.signature, w.log_index)
            .map(Verified::into_inner)
            .map_err(|e| format!("the withdrawal's signature: {}", ErrorChain(&e)))
    }
}

/// The origin a checkpoint note claims (its first line), before anything of it is
/// verified: what rotations are checked against.
fn claimed_origin(note: &str) -> Option<Origin> {
    let parsed = fts_proto::checkpoint::Note::parse(note).ok()?;
    Checkpoint::parse_text(&parsed.text).ok().map(|c| c.origin)
}

/// The log state with its file, and the settings it is judged by.
pub struct LogBook {
    settings: LogSettings,
    state: LogState,
    dir: Dir,
    name: OsString,
    /// `<state>.evidence`, beside `<state>.log` (PROTOCOL.md section 7.5).
    evidence: OsString,
    /// The state as the file holds it (`None`: not written by this process yet), so
    /// that a poll that changes nothing writes nothing: the file is flushed durably.
    saved: Option<LogState>,
}

impl LogBook {
    /// Loads `<state name>.log` from `dir` (empty when missing), or starts it again
    /// when `reset` (the old file kept as evidence).
    pub fn open(
        settings: LogSettings,
        dir: Dir,
        state_name: &OsStr,
        reset: bool,
    ) -> Result<LogBook, StateError> {
        let mut name = state_name.to_os_string();
        name.push(".log");
        let mut evidence = state_name.to_os_string();
        evidence.push(".evidence");
        let path = dir.join(&name);
        let mut saved = None;
        let state = match dir.read_bounded(&name, MAX_LOG_STATE_FILE) {
            Ok(bytes) if reset => {
                let book = LogBook {
                    settings: settings.clone(),
                    state: LogState::empty(),
                    dir,
                    name,
                    evidence,
                    saved: None,
                };
                book.keep_evidence("reset", &String::from_utf8_lossy(&bytes));
                tracing::warn!(file = %path.display(), "--reset-log-state: starting the log state again; the old one is kept as evidence");
                return Ok(book.with_initial());
            }
            Ok(bytes) => {
                let state = serde_json::from_slice::<LogState>(&bytes).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    damage: crate::client::state::StateDamage::Json(e),
                })?;
                saved = Some(state.clone());
                state
            }
            Err(e) if e.is_not_found() => LogState::empty(),
            Err(e) => {
                return Err(StateError::Read {
                    path,
                    source: std::io::Error::other(ErrorChain(&e).to_string()),
                });
            }
        };
        if let (Some(pinned), Some(given)) = (&state.origin, &settings.origin)
            && pinned != given
        {
            return Err(StateError::OtherLog { path, pinned: pinned.to_string(), given: given.to_string() });
        }
        Ok(LogBook { settings, state, dir, name, evidence, saved }.with_initial())
    }

    /// Applies `--log-checkpoint` to a state that has verified none yet.
    fn with_initial(mut self) -> LogBook {
        if self.state.seen() {
            return self;
        }
        if let Some(origin) = &self.settings.origin {
            self.state.origin.get_or_insert_with(|| origin.clone());
        }
        if let Some(note) = self.settings.initial_checkpoint.clone() {
            // Checked when the settings are made (the CLI verifies the file); taken
            // as the recorded checkpoint here.
            if let Ok(parsed) = fts_proto::checkpoint::Note::parse(&note)
                && let Ok(checkpoint) = Checkpoint::parse_text(&parsed.text)
            {
                self.state.origin = Some(checkpoint.origin.clone());
                self.state.size = checkpoint.size;
                self.state.root = Some(checkpoint.root);
                self.state.checkpoint = Some(note);
            }
        }
        self
    }

    /// How an answer whose first frame is not a `log` frame stands: before the host
    /// has verified a checkpoint, validly signed entries install; after, none does.
    pub fn without_frame(&self) -> AnswerLog {
        if self.state.seen() {
            AnswerLog::Unproven(
                "the answer carries no checkpoint, and this host has verified the log before (a server of an older release, or one that hides the log?)".into(),
            )
        } else {
            AnswerLog::NotSeenYet
        }
    }

    /// The state as it stands.
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// The release keys this host trusts, as verified rotations left them: the
    /// recorded ring while it grew from `trusted` (the trust files), else `trusted`'s.
    pub fn keyring(&self, trusted: &TrustedKeys) -> KeyRing {
        match &self.state.keys {
            Some(ring) => ring.clone().for_trusted(trusted),
            None => KeyRing::from_trusted(trusted),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LogSettings {
        &self.settings
    }

    /// Writes the log state durably.
    pub fn save(&self) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| StateError::Write {
            path: self.dir.join(&self.name),
            source: std::io::Error::other(e),
        })?;
        self.dir.write_atomic(&self.name, &bytes, &WRITE).map_err(|e| StateError::Write {
            path: self.dir.join(&self.name),
            source: std::io::Error::other(ErrorChain(&e).to_string()),
        })
    }

    /// The request's `log-size` and `alarms`, noting when the log was first asked for.
    pub fn request_fields(&mut self, now: u64) -> (u64, BTreeMap<AlarmName, u64>) {
        self.state.first_asked.get_or_insert(now);
        let alarms = self.state.alarms.iter().map(|(name, alarm)| (name.clone(), alarm.since)).collect();
        (self.state.size, alarms)
    }

    /// Checks an answer's `log` frame whole, records what verified (before anything
    /// of the answer is applied), and says how the answer's entries stand.
    pub fn check_frame(
        &mut self,
        frame: &LogFrame,
        trusted: &TrustedKeys,
        targets: &[Target],
        now: u64,
    ) -> AnswerLog {
        // The rotations first: the checkpoint is signed by the key they lead to. Each
        // is authenticated by the commitment this host holds; its place in the log is
        // checked below, against the checkpoint the new keys verify.
        let claimed = self.state.origin.clone().or_else(|| claimed_origin(&frame.checkpoint));
        let ring = self.keyring(trusted);
        let (ring, rotations) = match &claimed {
            Some(origin) => match ring.advance(origin, &frame.rotations) {
                Ok(advanced) => advanced,
                Err(why) => return self.unproven(format!("a rotation of the release key is refused: {why}")),
            },
            None => (ring, Vec::new()),
        };
        let keys_now = ring.trusted_now();
        let verified = match &self.state.origin {
            Some(origin) => verify_checkpoint(&frame.checkpoint, origin, &keys_now),
            None => verify_checkpoint_any_origin(&frame.checkpoint, &keys_now),
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(e) => {
                let why = format!("the answer's checkpoint does not verify: {}", ErrorChain(&e));
                tracing::error!(problem = %why, "refusing the answer's log frame");
                return AnswerLog::Unproven(why);
            }
        };
        let checkpoint = verified.checkpoint;
        let cosigned = match verify_cosignatures(&verified.note, &checkpoint, &self.settings.timestamp_keys) {
            Ok(cosigned) => cosigned,
            Err(e) => {
                let why = format!("a cosignature of the answer's checkpoint fails: {}", ErrorChain(&e));
                tracing::error!(problem = %why, "refusing the answer's log frame");
                return AnswerLog::Unproven(why);
            }
        };

        // Consistency with the recorded checkpoint.
        let (size0, root0) = (self.state.size, self.state.root);
        match (checkpoint.size.cmp(&size0), root0) {
            (std::cmp::Ordering::Less, _) => {
                self.raise(
                    alarm::BEHIND,
                    now,
                    format!(
                        "the server sent a checkpoint of {} leaves, older than the {size0} this host has verified; nothing of that answer is applied",
                        checkpoint.size
                    ),
                );
                self.persist();
                return AnswerLog::Refused;
            }
            (std::cmp::Ordering::Equal, Some(root0)) if checkpoint.root != root0 => {
                self.fork(&frame.checkpoint, "two checkpoints of one size with different roots", &[], now);
                return AnswerLog::Refused;
            }
            (std::cmp::Ordering::Greater, Some(root0)) => {
                if let Err(e) =
                    verify_consistency(size0, checkpoint.size, &root0, &checkpoint.root, &frame.consistency)
                {
                    self.fork(
                        &frame.checkpoint,
                        &format!("the consistency proof from the recorded checkpoint fails: {e}"),
                        &frame.consistency,
                        now,
                    );
                    return AnswerLog::Refused;
                }
            }
            _ => {}
        }

        // Each rotation used is a leaf of the verified checkpoint, at its index.
        for proof in &rotations {
            let leaf = leaf_hash(&proof.rotation.leaf());
            if let Err(e) =
                verify_inclusion(proof.log_index, checkpoint.size, &leaf, &proof.inclusion, &checkpoint.root)
            {
                let number = proof.rotation.statement.number;
                return self.unproven(format!(
                    "rotation {number} is not in the checkpoint at leaf {}: {e}",
                    proof.log_index
                ));
            }
        }
        for proof in &rotations {
            let s = &proof.rotation.statement;
            tracing::warn!(
                rotation = s.number,
                at_leaf = proof.log_index,
                "the release key rotated: the retired key signs only entries below this leaf from now on"
            );
        }

        // A head proof for each of the host's targets.
        let mut heads = BTreeMap::new();
        let mut withdrawn = BTreeMap::new();
        for target in targets {
            let Some(proof) = frame.heads.get(target) else {
                return self.unproven(format!("the answer proves no head for target {target}"));
            };
            match verify_head(checkpoint.heads_count, &checkpoint.heads_root, target, proof) {
                Ok(Some(seq)) => {
                    heads.insert(target.clone(), seq);
                    if let HeadProof::Present(leaf) = proof
                        && !leaf.withdrawn.is_empty()
                    {
                        withdrawn.insert(target.clone(), leaf.withdrawn.clone());
                    }
                }
                Ok(None) => {}
                Err(e) => return self.unproven(format!("the head proof of target {target} fails: {e}")),
            }
        }

        // Freshness: the newest cosignature not too far ahead of this clock.
        let skew = self.settings.max_skew.as_secs();
        let mut ahead = None;
        for c in &cosigned {
            if c.time > now.saturating_add(skew) {
                ahead = Some(c.time);
            } else if self.state.attested.is_none_or(|t| t < c.time) {
                self.state.attested = Some(c.time);
            }
        }
        match ahead {
            Some(time) => self.raise(
                alarm::CLOCK,
                now,
                format!(
                    "a cosignature is dated {} s ahead of this host's clock (more than --max-skew {skew} s): it is not used; is this clock behind?",
                    time - now
                ),
            ),
            None => self.clear(alarm::CLOCK),
        }
        self.clear(alarm::BEHIND);
        self.state.origin = Some(checkpoint.origin.clone());
        self.state.size = checkpoint.size;
        self.state.root = Some(checkpoint.root);
        self.state.checkpoint = Some(frame.checkpoint.clone());
        self.state.heads = heads;
        if !rotations.is_empty() || self.state.keys.is_some() {
            self.state.keys = Some(ring.clone());
        }
        self.persist();
        AnswerLog::Verified {
            size: checkpoint.size,
            root: checkpoint.root,
            origin: checkpoint.origin.clone(),
            withdrawn: Arc::new(withdrawn),
            keys: Arc::new(ring),
        }
    }

    fn unproven(&mut self, why: String) -> AnswerLog {
        tracing::error!(problem = %why, "refusing the answer's log frame");
        AnswerLog::Unproven(why)
    }

    /// Records a fork: the alarm, and both checkpoints with the proof in an evidence file.
    fn fork(&mut self, other: &str, why: &str, proof: &[LogHash], now: u64) {
        let recorded = self.state.checkpoint.clone().unwrap_or_default();
        let proof: Vec<String> = proof.iter().map(ToString::to_string).collect();
        let evidence = format!(
            "fts log fork evidence\nwhy: {why}\n\nrecorded checkpoint:\n{recorded}\nconflicting checkpoint:\n{other}\nconsistency proof:\n{}\n",
            proof.join("\n")
        );
        let file = self.keep_evidence("fork", &evidence);
        self.raise(
            alarm::FORK,
            now,
            format!(
                "{why}; nothing that only the conflicting checkpoint proves is installed (evidence: {file})"
            ),
        );
        self.persist();
    }

    /// Writes `text` into the evidence folder beside the state, keeping at most
    /// [`MAX_EVIDENCE`] files; returns the file's path in words. The same evidence
    /// again (a server that keeps sending its fork) is not written twice, so that it
    /// never pushes the first, different evidence out.
    fn keep_evidence(&self, kind: &str, text: &str) -> String {
        let folder = &self.evidence;
        let result = (|| -> Result<String, fts_fs::FsError> {
            let (dir, _) = self.dir.open_or_create_dir(folder, 0o700)?;
            let mut names: Vec<OsString> = dir
                .entries()?
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| !name.to_string_lossy().starts_with('.'))
                .collect();
            names.sort();
            for name in &names {
                if dir.read_bounded(name, MAX_LOG_STATE_FILE).is_ok_and(|kept| kept == text.as_bytes()) {
                    return Ok(dir.join(name).display().to_string());
                }
            }
            while names.len() >= MAX_EVIDENCE {
                let oldest = names.remove(0);
                dir.remove_file(&oldest)?;
            }
            let name = format!("{}-{}-{kind}.txt", crate::client::unix_now(), names.len());
            dir.write_atomic(&name, text.as_bytes(), &WRITE)?;
            Ok(dir.join(&name).display().to_string())
        })();
        match result {
            Ok(path) => path,
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "cannot write the log evidence file");
                "not written".to_owned()
            }
        }
    }

    /// After a poll: judges `stale` and `withheld` at `now`, from the heads verified
    /// and the host's `since`; `genuine_hold(target)` says whether a target is held on
    /// an entry it cannot take for a local reason it reported.
    pub fn judge(
        &mut self,
        now: u64,
        since: &dyn Fn(&Target) -> u64,
        genuine_hold: &dyn Fn(&Target) -> bool,
    ) {
        if !self.settings.timestamp_keys.is_empty() {
            let max_age = self.settings.max_age.as_secs();
            let fresh_from = self.state.attested.or(self.state.first_asked).unwrap_or(now);
            let age = now.saturating_sub(fresh_from);
            if !self.state.seen() {
                self.raise(
                    alarm::STALE,
                    now,
                    "the log has not been seen yet: no answer has carried a checkpoint".into(),
                );
            } else if self.state.attested.is_none() || age > max_age {
                let detail = match self.state.attested {
                    Some(_) => format!(
                        "the newest cosignature this host has seen is {age} s old, more than --max-age {max_age} s: someone may be keeping patches from it"
                    ),
                    None => "no cosignature of a trusted timestamp key has reached this host".to_owned(),
                };
                self.raise(alarm::STALE, now, detail);
            } else {
                self.clear(alarm::STALE);
            }
        } else {
            // Freshness is off (said at start): nothing to judge staleness by.
            if !self.state.seen() {
                tracing::debug!("the log has not been seen yet: no answer has carried a checkpoint");
            }
            self.clear(alarm::STALE);
        }

        let after = self.settings.withheld_after.as_secs();
        let mut withheld = Vec::new();
        let heads = self.state.heads.clone();
        self.state
            .behind_since
            .retain(|target, _| heads.get(target).is_some_and(|&head| since(target) < head));
        for (target, &head) in &heads {
            if since(target) >= head || genuine_hold(target) {
                self.state.behind_since.remove(target);
                continue;
            }
            let from = *self.state.behind_since.entry(target.clone()).or_insert(now);
            if now.saturating_sub(from) > after {
                withheld.push(format!("{target} at seq {} of {head} for {} s", since(target), now - from));
            }
        }
        if withheld.is_empty() {
            self.clear(alarm::WITHHELD);
        } else {
            self.raise(
                alarm::WITHHELD,
                now,
                format!(
                    "behind the verified head for longer than --withheld-after {after} s: {}",
                    withheld.join(", ")
                ),
            );
        }
        self.persist();
    }

    fn raise(&mut self, name: &str, now: u64, detail: String) {
        let Some(key) = AlarmName::parse(name) else { return };
        let since = self.state.alarms.get(&key).map_or(now, |a| a.since);
        tracing::error!(alarm = name, since, "{detail}");
        self.state.alarms.insert(key, Alarm { since, detail });
    }

    fn clear(&mut self, name: &str) {
        if let Some(key) = AlarmName::parse(name)
            && self.state.alarms.remove(&key).is_some()
        {
            tracing::info!(alarm = name, "alarm cleared");
        }
    }

    /// Saves what changed, logging a failure: the log state in memory still guards
    /// this run.
    fn persist(&mut self) {
        if self.saved.as_ref() == Some(&self.state) {
            return;
        }
        match self.save() {
            Ok(()) => self.saved = Some(self.state.clone()),
            Err(e) => tracing::error!(error = %ErrorChain(&e), "cannot save the log state"),
        }
    }
}
