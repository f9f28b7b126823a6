//! `fts serve --ticket-key FILE`: the keys that seal TLS session tickets, shared by
//! every replica behind one load balancer, so that a host the balancer moves to
//! another server still resumes its session (PROTOCOL.md section 1 allows resumption;
//! [`crate::tls`] checks every resumed session again as if it were new).
//!
//! **The file** (`ticket.key`, 0600, written by `fts keygen ticket-key`) is text: the
//! line [`HEADER`], then one line per key, `ROLE ID SINCE SECRET`:
//! - `ROLE` is `seal` (exactly one: it seals every new ticket), `next` (at most one:
//!   the key the next rotation makes `seal`) or `old` (the key that sealed before);
//!   every key listed opens tickets;
//! - `ID` is 16 hex digits, written into each ticket so the right key is tried;
//! - `SINCE` is when the key took its role (Unix seconds), which is how a rotation
//!   knows whether the tickets of the key it would drop can still be in use;
//! - `SECRET` is 32 random bytes as 64 hex digits.
//!
//! **Rotation** is one command, repeated (`fts keygen ticket-key --rotate`): `next`
//! becomes `seal`, `seal` becomes `old`, the previous `old` is dropped and a new
//! `next` is made. So a key seals only once the copy before already carried it to
//! every replica, and opens for one more round after: while the new file reaches the
//! replicas one by one, each of them can open what any other seals. Rotating again
//! before [`TICKET_LIFETIME`] has passed would drop a key whose tickets are still
//! valid, so it is refused without `--force` (the cost would only be one full
//! handshake per host, never a failed poll).
//!
//! **A ticket** is `ID (8) ‖ SALT (16) ‖ ChaCha20-Poly1305(ISSUED (8, big-endian Unix
//! seconds) ‖ rustls' session state)`, sealed with a key derived for that ticket alone
//! (HKDF-SHA256 of the secret, salted with the random `SALT`), so the all-zero nonce
//! is never used twice with one key, and the number of tickets per secret has no
//! practical bound. `ID` and `SALT` are the associated data. A ticket older than
//! [`TICKET_LIFETIME`], of a key no longer listed, or altered in any byte opens as
//! nothing, and the host makes a full handshake.
//!
//! **What the key protects.** A ticket carries the session's secrets and the host's
//! certificate chain, and a resumed session is not asked for the host's key again: so
//! whoever holds this file can resume as any host whose certificate they have seen,
//! at every server sharing it (the chain is still verified, and revocation applied, on
//! every resumption). Keep it like `server.key`: 0600, on the servers only. Traffic
//! recorded earlier stays secret even so: rustls resumes only with a fresh (EC)DHE
//! exchange (`psk_dhe_ke`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use rustls::server::ProducesTickets;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::files::{MAX_CREDENTIAL_FILE, Mode, read_bounded, write_atomic};

/// The file `fts keygen ticket-key` writes in its folder.
pub const TICKET_KEY_FILE: &str = "ticket.key";

/// The first line of a ticket key file.
pub const HEADER: &str = "fts ticket keys v1";

/// How long a ticket resumes a session after it was sealed. Hosts poll every few
/// minutes; half a day spares nearly every handshake and bounds how long a copied
/// ticket is good for. Rotate no more often than this (daily is the advice).
pub const TICKET_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How far ahead of this server's clock another replica's may be: a ticket sealed
/// further in the future than this is not resumed.
const MAX_CLOCK_DRIFT_SECS: u64 = 300;
const ID_LEN: usize = 8;
const SALT_LEN: usize = 16;
const SECRET_LEN: usize = 32;
const ISSUED_LEN: usize = 8;
/// What HKDF expands the ticket key into: one ChaCha20-Poly1305 key per ticket.
const HKDF_INFO: &[u8] = b"fts ticket v1";

/// What a key in the file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Seals new tickets (and opens them).
    Seal,
    /// Only opens: the next rotation makes it `seal`.
    Next,
    /// Only opens: it sealed before the last rotation.
    Old,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Seal => "seal",
            Role::Next => "next",
            Role::Old => "old",
        }
    }

    fn parse(word: &str) -> Option<Role> {
        [Role::Seal, Role::Next, Role::Old].into_iter().find(|role| role.word() == word)
    }
}

/// A key's 8-byte id, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One line of the file.
#[derive(Clone)]
pub struct TicketKey {
    /// What it is for.
    pub role: Role,
    /// Its id, written into every ticket it seals.
    pub id: KeyId,
    /// When the key took its role, in Unix seconds.
    pub since: u64,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("TicketKey")
            .field("role", &self.role)
            .field("id", &self.id)
            .field("since", &self.since)
            .finish()
    }
}

impl TicketKey {
    fn generate(role: Role, since: u64) -> Result<TicketKey, Error> {
        let mut id = [0u8; ID_LEN];
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::fill(&mut id).map_err(Error::Random)?;
        getrandom::fill(secret.as_mut()).map_err(Error::Random)?;
        Ok(TicketKey { role, id: KeyId(id), since, secret })
    }

    /// The ChaCha20-Poly1305 key of the ticket salted with `salt`.
    fn ticket_cipher(&self, salt: &[u8]) -> Option<LessSafeKey> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(self.secret.as_ref());
        let okm = prk.expand(&[HKDF_INFO], &CHACHA20_POLY1305).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// The keys of one file, checked: exactly one `seal`, at most one `next`, ids unique.
#[derive(Debug, Clone)]
pub struct TicketKeyFile {
    /// The `seal` key first (every constructor puts it there), then the others in
    /// the file's order.
    keys: Vec<TicketKey>,
}

impl TicketKeyFile {
    /// A new file's keys: one to seal, and the next.
    pub fn generate(now: u64) -> Result<TicketKeyFile, Error> {
        Ok(TicketKeyFile {
            keys: vec![TicketKey::generate(Role::Seal, now)?, TicketKey::generate(Role::Next, now)?],
        })
    }

    /// Reads and checks `path`; every problem names the file and the line.
    pub fn load(path: &Path) -> Result<TicketKeyFile, Error> {
        let bytes = Zeroizing::new(read_bounded(path, MAX_CREDENTIAL_FILE)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::bad_file(path, "not UTF-8 text"))?;
        Self::parse(text).map_err(|problem| Error::bad_file(path, problem))
    }

    fn parse(text: &str) -> Result<TicketKeyFile, String> {
        let mut lines =
            text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));
        match lines.next() {
            Some((_, line)) if line.trim() == HEADER => {}
            _ => {
                return Err(format!(
                    "not a ticket key file: its first line is not {HEADER:?} (`fts keygen ticket-key` writes one)"
                ));
            }
        }
        let mut keys: Vec<TicketKey> = Vec::new();
        for (n, line) in lines {
            let key = parse_key(line).map_err(|problem| format!("line {}: {problem}", n + 1))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(format!("line {}: key id {} is listed twice", n + 1, key.id));
            }
            keys.push(key);
        }
        let count = |role| keys.iter().filter(|k| k.role == role).count();
        if count(Role::Seal) != 1 {
            return Err(format!("{} `seal` keys: exactly one is needed", count(Role::Seal)));
        }
        if count(Role::Next) > 1 {
            return Err(format!("{} `next` keys: at most one is allowed", count(Role::Next)));
        }
        // Stable: the others keep their order.
        keys.sort_by_key(|k| k.role != Role::Seal);
        Ok(TicketKeyFile { keys })
    }

    /// The file's text (with its secrets: write it 0600).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(format!(
            "{HEADER}\n# ROLE ID SINCE SECRET. `seal` seals new TLS session tickets; every key opens them.\n\
             # Private, like server.key: the same file on every server behind one balancer.\n\
             # Rotate with `fts keygen ticket-key --rotate`, then copy it to every server and SIGHUP each.\n"
        ));
        for key in &self.keys {
            text.push_str(&format!(
                "{} {} {} {}\n",
                key.role.word(),
                key.id,
                key.since,
                hex::encode(key.secret.as_ref())
            ));
        }
        text
    }

    /// Every key, in the file's order (each opens tickets).
    pub fn keys(&self) -> &[TicketKey] {
        &self.keys
    }

    /// The key that seals.
    pub fn sealing(&self) -> &TicketKey {
        // Never empty: `parse`, `generate` and `rotate` all put the seal key first.
        &self.keys[0]
    }

    /// One rotation at `now`: `next` seals, `seal` becomes `old`, the previous `old`
    /// keys are dropped, a new `next` is made. Refused while the key sealing now has
    /// done so for less than [`TICKET_LIFETIME`] and an `old` key would be dropped
    /// (its tickets may still be valid), unless `force`.
    pub fn rotate(&self, now: u64, force: bool) -> Result<TicketKeyFile, Error> {
        let sealing = self.sealing();
        let age = now.saturating_sub(sealing.since);
        if !force && age < TICKET_LIFETIME.as_secs() && self.keys.iter().any(|k| k.role == Role::Old) {
            return Err(Error::TicketKeyTooNew {
                key_id: sealing.id.to_string(),
                minutes: age / 60,
                lifetime_hours: TICKET_LIFETIME.as_secs() / 3600,
            });
        }
        let promoted = match self.keys.iter().find(|k| k.role == Role::Next) {
            Some(next) => TicketKey { role: Role::Seal, since: now, ..next.clone() },
            // A file without `next` (edited by hand): a new key seals at once, and
            // replicas without this file yet make one full handshake for it.
            None => TicketKey::generate(Role::Seal, now)?,
        };
        let retired = TicketKey { role: Role::Old, since: now, ..sealing.clone() };
        Ok(TicketKeyFile { keys: vec![promoted, retired, TicketKey::generate(Role::Next, now)?] })
    }
}

/// What `fts keygen ticket-key` is to do.
#[derive(Debug, Clone)]
pub struct TicketKeyOptions {
    /// The folder of `ticket.key`.
    pub dir: PathBuf,
    /// Rotate the existing file instead of writing a new one.
    pub rotate: bool,
    /// Without `rotate`: overwrite an existing file. With it: rotate even if the key
    /// sealing now is younger than [`TICKET_LIFETIME`].
    pub force: bool,
}

/// What `fts keygen ticket-key` wrote.
#[derive(Debug)]
pub struct TicketKeyWritten {
    /// `DIR/ticket.key`.
    pub path: PathBuf,
    /// What it holds now.
    pub keys: TicketKeyFile,
    /// The key that sealed before, when this was a rotation.
    pub rotated_from: Option<KeyId>,
}

/// `fts keygen ticket-key`: a new `ticket.key` (0600; refused over an existing one
/// without `force`), or with `rotate` the existing one rotated in place, atomically.
pub fn ticket_key(opts: &TicketKeyOptions) -> Result<TicketKeyWritten, Error> {
    let path = opts.dir.join(TICKET_KEY_FILE);
    let now = unix_now();
    let (keys, rotated_from) = if opts.rotate {
        let current = match TicketKeyFile::load(&path) {
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::bad_file(
                    &path,
                    "does not exist: run `fts keygen ticket-key` (without --rotate) first",
                ));
            }
            other => other?,
        };
        (current.rotate(now, opts.force)?, Some(current.sealing().id))
    } else {
        crate::keygen::prepare(&opts.dir, &[&path], opts.force)?;
        (TicketKeyFile::generate(now)?, None)
    };
    write_atomic(&path, keys.to_text().as_bytes(), Mode::Secret, opts.force || opts.rotate)?;
    Ok(TicketKeyWritten { path, keys, rotated_from })
}

/// The running server's ticket keys: what `--ticket-key` loaded, replaced whole by
/// [`TicketKeys::reload`] (SIGHUP). It is rustls' [`ProducesTickets`].
pub struct TicketKeys {
    path: PathBuf,
    keys: RwLock<Arc<TicketKeyFile>>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys").field("path", &self.path).finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// Loads `path`: any problem in it stops the start.
    pub fn load(path: &Path) -> Result<Arc<TicketKeys>, Error> {
        let keys = TicketKeyFile::load(path)?;
        Ok(Arc::new(TicketKeys { path: path.to_owned(), keys: RwLock::new(Arc::new(keys)) }))
    }

    /// Reads the file again. On success its keys replace the ones in use (tickets of a
    /// key no longer listed open no more); on error the ones in use stay.
    pub fn reload(&self) -> Result<Arc<TicketKeyFile>, Error> {
        let keys = Arc::new(TicketKeyFile::load(&self.path)?);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
        Ok(keys)
    }

    /// The file it loads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys in use.
    pub fn current(&self) -> Arc<TicketKeyFile> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn seal_at(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        let keys = self.current();
        let key = keys.sealing();
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).ok()?;
        let header_len = ID_LEN + SALT_LEN;
        let mut ticket =
            Vec::with_capacity(header_len + ISSUED_LEN + plain.len() + CHACHA20_POLY1305.tag_len());
        ticket.extend_from_slice(&key.id.0);
        ticket.extend_from_slice(&salt);
        ticket.extend_from_slice(&now.to_be_bytes());
        ticket.extend_from_slice(plain);
        // Each ticket has its own key (HKDF with its salt): the zero nonce is used once.
        let (header, sealed) = ticket.split_at_mut(header_len);
        let tag = key
            .ticket_cipher(&salt)?
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(&*header), sealed)
            .ok()?;
        ticket.extend_from_slice(tag.as_ref());
        Some(ticket)
    }

    fn open_at(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        let header = ticket.get(..ID_LEN + SALT_LEN)?;
        let (id, salt) = header.split_at(ID_LEN);
        let keys = self.current();
        let key = keys.keys().iter().find(|k| k.id.0 == id)?;
        let mut sealed = ticket.get(ID_LEN + SALT_LEN..)?.to_vec();
        let plain = key
            .ticket_cipher(salt)?
            .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(header), &mut sealed)
            .ok()?;
        let (issued, session) = plain.split_first_chunk::<ISSUED_LEN>()?;
        let issued = u64::from_be_bytes(*issued);
        // Sealed in the future by more than a clock's drift between replicas, or too
        // long ago: not resumed.
        let fresh = issued <= now.saturating_add(MAX_CLOCK_DRIFT_SECS)
            && now.saturating_sub(issued) < TICKET_LIFETIME.as_secs();
        fresh.then(|| session.to_vec())
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(TICKET_LIFETIME.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(plain, unix_now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(cipher, unix_now())
    }
}

fn parse_key(line: &str) -> Result<TicketKey, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [role, id, since, secret] = fields[..] else {
        return Err(format!("{} fields, expected 4: ROLE ID SINCE SECRET", fields.len()));
    };
    let role = Role::parse(role).ok_or_else(|| format!("role {role:?}: expected seal, next or old"))?;
    let id: [u8; ID_LEN] = hex::decode(id)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("key id {id:?}: expected {} hex digits", ID_LEN * 2))?;
    let since = since.parse::<u64>().map_err(|_| format!("since {since:?}: expected Unix seconds"))?;
    let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
    hex::decode_to_slice(secret, bytes.as_mut()).map_err(|_| {
        format!("the secret of key {}: expected {} hex digits", hex::encode(id), SECRET_LEN * 2)
    })?;
    Ok(TicketKey { role, id: KeyId(id), since, secret: bytes })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys_of(file: &TicketKeyFile) -> TicketKeys {
        TicketKeys { path: PathBuf::from("ticket.key"), keys: RwLock::new(Arc::new(file.clone())) }
    }

    fn reparsed(file: &TicketKeyFile) -> TicketKeyFile {
        TicketKeyFile::parse(&file.to_text()).unwrap()
    }

    #[test]
    fn a_new_file_has_a_sealing_key_and_the_next_and_reads_back_the_same() {
        let file = TicketKeyFile::generate(NOW).unwrap();
        let roles: Vec<Role> = file.keys().iter().map(|k| k.role).collect();
        assert_eq!(roles, [Role::Seal, Role::Next]);
        assert!(file.to_text().starts_with(HEADER));
        let again = reparsed(&file);
        assert_eq!(again.to_text(), file.to_text());
        assert_eq!(again.sealing().id, file.sealing().id);
    }

    #[test]
    fn the_seal_key_seals_wherever_it_is_listed() {
        let file = TicketKeyFile::generate(NOW).unwrap();
        let text = file.to_text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let reordered = TicketKeyFile::parse(&format!("{HEADER}\n{}\n{}\n", lines[2], lines[1])).unwrap();
        assert_eq!(reordered.sealing().id, file.sealing().id);
        let ticket = keys_of(&reordered).seal_at(b"state", NOW).unwrap();
        assert_eq!(ticket[..ID_LEN], file.sealing().id.0, "sealed with the seal key");
    }

    #[test]
    fn a_ticket_sealed_by_one_replica_opens_at_another_with_the_same_file_only() {
        let file = TicketKeyFile::generate(NOW).unwrap();
        let (one, other) = (keys_of(&file), keys_of(&reparsed(&file)));
        let ticket = one.seal_at(b"session state", NOW).unwrap();
        assert_eq!(other.open_at(&ticket, NOW + 60).as_deref(), Some(&b"session state"[..]));
        assert_ne!(one.seal_at(b"session state", NOW).unwrap(), ticket, "each ticket has its own salt");

        let stranger = keys_of(&TicketKeyFile::generate(NOW).unwrap());
        assert_eq!(stranger.open_at(&ticket, NOW), None, "another file opens nothing");
    }

    #[test]
    fn a_ticket_altered_in_any_byte_or_cut_opens_as_nothing() {
        let keys = keys_of(&TicketKeyFile::generate(NOW).unwrap());
        let ticket = keys.seal_at(b"state", NOW).unwrap();
        for i in 0..ticket.len() {
            let mut altered = ticket.clone();
            altered[i] ^= 0x01;
            assert_eq!(keys.open_at(&altered, NOW), None, "byte {i} altered");
        }
        for len in 0..ticket.len() {
            assert_eq!(keys.open_at(&ticket[..len], NOW), None, "cut to {len} bytes");
        }
        assert_eq!(keys.open_at(&[0xff; 4096], NOW), None);
    }

    #[test]
    fn a_ticket_past_its_lifetime_or_from_the_future_opens_as_nothing() {
        let keys = keys_of(&TicketKeyFile::generate(NOW).unwrap());
        let ticket = keys.seal_at(b"state", NOW).unwrap();
        let lifetime = TICKET_LIFETIME.as_secs();
        assert!(keys.open_at(&ticket, NOW + lifetime - 1).is_some());
        assert_eq!(keys.open_at(&ticket, NOW + lifetime), None, "expired");
        assert!(keys.open_at(&ticket, NOW - 300).is_some(), "a replica's clock a little behind");
        assert_eq!(keys.open_at(&ticket, NOW - 301), None, "sealed in the future");
        assert_eq!(keys.lifetime(), 12 * 3600);
    }

    #[test]
    fn while_a_rotation_reaches_the_replicas_each_opens_what_any_other_seals() {
        let before = TicketKeyFile::generate(NOW).unwrap();
        let after = before.rotate(NOW + 10, false).unwrap();
        let roles: Vec<Role> = after.keys().iter().map(|k| k.role).collect();
        assert_eq!(roles, [Role::Seal, Role::Old, Role::Next]);
        assert_eq!(after.sealing().id, before.keys()[1].id, "the next key seals");
        let (not_yet, rotated) = (keys_of(&before), keys_of(&after));

        let old_ticket = not_yet.seal_at(b"old", NOW + 20).unwrap();
        let new_ticket = rotated.seal_at(b"new", NOW + 20).unwrap();
        assert_eq!(rotated.open_at(&old_ticket, NOW + 30).as_deref(), Some(&b"old"[..]));
        assert_eq!(not_yet.open_at(&new_ticket, NOW + 30).as_deref(), Some(&b"new"[..]));

        // The next rotation drops the first key: its tickets open no more.
        let later = NOW + TICKET_LIFETIME.as_secs() + 20;
        let third = keys_of(&after.rotate(later, false).unwrap());
        assert_eq!(third.open_at(&old_ticket, later), None);
        assert!(third.open_at(&new_ticket, later - 1000).is_some());
    }

    #[test]
    fn rotating_again_before_the_old_keys_tickets_expire_is_refused_without_force() {
        let once = TicketKeyFile::generate(NOW).unwrap().rotate(NOW, false).unwrap();
        match once.rotate(NOW + 3600, false) {
            Err(Error::TicketKeyTooNew { key_id, minutes: 60, lifetime_hours: 12 }) => {
                assert_eq!(key_id, once.sealing().id.to_string());
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(once.rotate(NOW + 3600, true).is_ok(), "--force rotates anyway");
        assert!(once.rotate(NOW + TICKET_LIFETIME.as_secs(), false).is_ok());
    }

    #[test]
    fn every_malformed_file_is_refused_with_the_line_and_the_problem() {
        let good = TicketKeyFile::generate(NOW).unwrap();
        let text = good.to_text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let (seal, next) = (lines[1], lines[2]);
        let cases = [
            (String::new(), "first line is not"),
            (format!("{seal}\n"), "first line is not"),
            (format!("{HEADER}\n"), "0 `seal` keys"),
            (format!("{HEADER}\n{next}\n"), "0 `seal` keys"),
            (format!("{HEADER}\n{seal}\n{}\n", seal.replacen("seal", "old", 1)), "listed twice"),
            (format!("{HEADER}\n{seal}\n{}\n", next.replacen("next", "seal", 1)), "2 `seal` keys"),
            (format!("{HEADER}\nseal 00 1 {}\n", "00".repeat(32)), "line 2: key id"),
            (format!("{HEADER}\nseal 0011223344556677 x {}\n", "00".repeat(32)), "line 2: since"),
            (
                format!("{HEADER}\nseal 0011223344556677 1 {}\n", "00".repeat(31)),
                "the secret of key 0011223344556677",
            ),
            (format!("{HEADER}\nseal 0011223344556677 1 {}\n", "zz".repeat(32)), "the secret"),
            (format!("{HEADER}\nkeep 0011223344556677 1 {}\n", "00".repeat(32)), "role \"keep\""),
            (format!("{HEADER}\nseal 0011223344556677 1\n"), "3 fields, expected 4"),
        ];
        for (text, expected) in cases {
            let problem = TicketKeyFile::parse(&text).map(|_| ()).unwrap_err();
            assert!(problem.contains(expected), "{text:?}: {problem}");
            assert!(!problem.contains(&"00".repeat(32)), "no secret in a message: {problem}");
        }
    }

    #[test]
    fn keygen_writes_the_file_0600_refuses_to_overwrite_and_rotates_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TicketKeyOptions { dir: dir.path().join("certs"), rotate: false, force: false };
        let written = ticket_key(&opts).unwrap();
        assert_eq!(written.path, dir.path().join("certs/ticket.key"));
        assert_eq!(std::fs::metadata(&written.path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(ticket_key(&opts), Err(Error::AlreadyExists { .. })));

        let rotated = ticket_key(&TicketKeyOptions { rotate: true, ..opts.clone() }).unwrap();
        assert_eq!(rotated.rotated_from, Some(written.keys.sealing().id));
        let on_disk = TicketKeyFile::load(&written.path).unwrap();
        assert_eq!(on_disk.sealing().id, written.keys.keys()[1].id);
        assert!(matches!(
            ticket_key(&TicketKeyOptions { rotate: true, ..opts.clone() }),
            Err(Error::TicketKeyTooNew { .. })
        ));

        let missing = TicketKeyOptions { dir: dir.path().join("none"), rotate: true, force: false };
        let message = ticket_key(&missing).unwrap_err().to_string();
        assert!(message.contains("does not exist") && message.contains("without --rotate"), "{message}");
    }

    #[test]
    fn a_reload_that_fails_keeps_the_keys_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TicketKeyOptions { dir: dir.path().to_owned(), rotate: false, force: false };
        let written = ticket_key(&opts).unwrap();
        let keys = TicketKeys::load(&written.path).unwrap();
        let ticket = keys.encrypt(b"state").unwrap();
        std::fs::write(&written.path, "not a key file\n").unwrap();
        let problem = keys.reload().unwrap_err().to_string();
        assert!(problem.contains("not a ticket key file"), "{problem}");
        assert_eq!(keys.decrypt(&ticket).as_deref(), Some(&b"state"[..]), "the keys in use stay");

        ticket_key(&TicketKeyOptions { force: true, ..opts }).unwrap();
        keys.reload().unwrap();
        assert_eq!(keys.decrypt(&ticket), None, "a key no longer listed opens nothing");
    }

    #[test]
    fn no_secret_is_ever_printed_by_debug() {
        let file = TicketKeyFile::generate(NOW).unwrap();
        let secret = hex::encode(file.sealing().secret.as_ref());
        let shown = format!("{file:?}");
        assert!(shown.contains(&file.sealing().id.to_string()) && !shown.contains(&secret), "{shown}");
    }
}
