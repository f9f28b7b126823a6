//! The fleet view: what each host has, what it lacks and why, computed from its
//! status (its polls and receipts) and the store's entries.
//!
//! Per host and entry the state is the newest fact about it: a receipt's outcome
//! (installed, hook failed n of m, held, withdrawn, superseded), else the host's last
//! poll (`since` covers it: installed; held at it: held), else the server's own record
//! that it sent the entry (offered), else pending, or silent when the host has not
//! been heard from. A held or refused receipt that a later poll's `since` covers is
//! over: the poll is newer.
//!
//! Per host: revoked (its certificate's serial is in the server's CRL), lost (no
//! contact for `lost_after`), silent (no contact for three times its own promised
//! `next-poll-within`), failing (a hook failed on the newest version of a file, or a
//! log alarm is raised), held, behind, or current. A host needs attention unless it
//! is current, revoked or lost; a required reboot or a certificate that expires
//! within [`EXPIRING_WITHIN`] needs attention too.
//!
//! Nothing here reads files: the caller passes the statuses ([`crate::StatusDir`]) and
//! the store's facts ([`StoreFacts`]), so every backend shares it.

use std::collections::{BTreeMap, BTreeSet};

use fts_proto::{AlarmName, ClientId, FileHash, FileName, Published, Target};
use serde::Serialize;

use crate::dir::{ClientStatus, EntryState, Problem, ReceiptBook};

/// A certificate expiring within this many seconds needs attention (7 days).
pub const EXPIRING_WITHIN: u64 = 7 * 86_400;
/// `--lost-after`'s default: 30 days.
pub const DEFAULT_LOST_AFTER: u64 = 30 * 86_400;
/// When a host never said how soon it polls again (an older fts), it is silent after
/// this (three times `fts poll`'s default `--max-interval` of 1 h).
pub const DEFAULT_SILENT_AFTER: u64 = 3 * 3_600;

/// One entry of the store, as the views need it.
#[derive(Debug, Clone)]
pub struct StoreEntry {
    /// Its target.
    pub target: Target,
    /// Its seq.
    pub seq: u64,
    /// Its file name.
    pub file_name: FileName,
    /// Its content's hash.
    pub file_hash: FileHash,
    /// When it was published (Unix seconds).
    pub published: u64,
    /// It was withdrawn.
    pub withdrawn: bool,
}

/// What the store says, as the views need it.
#[derive(Debug, Clone, Default)]
pub struct StoreFacts {
    entries: Vec<StoreEntry>,
    log_size: u64,
    newest: BTreeMap<Target, u64>,
    by_place: std::collections::HashMap<(Target, u64), usize>,
}

impl StoreFacts {
    /// The facts of `entries` (in publish order) and a log of `log_size` leaves.
    pub fn new(entries: Vec<StoreEntry>, log_size: u64) -> StoreFacts {
        let mut newest: BTreeMap<Target, u64> = BTreeMap::new();
        let mut by_place = std::collections::HashMap::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let seq = newest.entry(entry.target.clone()).or_default();
            *seq = (*seq).max(entry.seq);
            by_place.insert((entry.target.clone(), entry.seq), i);
        }
        StoreFacts { entries, log_size, newest, by_place }
    }

    /// The facts of a store snapshot: its entries (with which are withdrawn) and its
    /// log's size.
    pub fn of(snapshot: &fts_store::StoreSnapshot) -> StoreFacts {
        let withdrawn: BTreeSet<(&Target, u64)> =
            snapshot.withdrawals().iter().map(|w| (&w.statement.target, w.statement.seq.get())).collect();
        let entries = snapshot
            .entries()
            .iter()
            .map(|e| StoreEntry {
                target: e.statement.target.clone(),
                seq: e.statement.seq.get(),
                file_name: e.statement.file_name.clone(),
                file_hash: e.statement.file_hash,
                published: e.statement.published.unix_seconds(),
                withdrawn: withdrawn.contains(&(&e.statement.target, e.statement.seq.get())),
            })
            .collect();
        StoreFacts::new(entries, snapshot.log().map_or(0, |l| l.size()))
    }

    /// The number of leaves of the store's log (0: none).
    pub fn log_size(&self) -> u64 {
        self.log_size
    }

    /// Every entry, in publish order.
    pub fn entries(&self) -> &[StoreEntry] {
        &self.entries
    }

    /// The newest seq of `target` (0: none).
    pub fn newest(&self, target: &Target) -> u64 {
        self.newest.get(target).copied().unwrap_or(0)
    }

    /// The entry at (`target`, `seq`).
    pub fn entry(&self, target: &Target, seq: u64) -> Option<&StoreEntry> {
        self.by_place.get(&(target.clone(), seq)).map(|&i| &self.entries[i])
    }
}

/// How the views judge time and revocation.
#[derive(Debug, Clone)]
pub struct ViewRules {
    /// Now, Unix seconds.
    pub now: u64,
    /// No contact for this long: lost (hidden unless asked for).
    pub lost_after: u64,
    /// Serials (lower-case hex) the server's CRL revokes.
    pub revoked_serials: BTreeSet<String>,
}

/// A host's state in the fleet, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// Its certificate is revoked: it gets nothing.
    Revoked,
    /// Not heard from for longer than `--lost-after`.
    Lost,
    /// Not heard from for three times its promised poll interval.
    Silent,
    /// A hook failed on the newest version of a file, or a log alarm is raised.
    Failing,
    /// A target is held at an entry it cannot apply.
    Held,
    /// A target lacks entries the store has.
    Behind,
    /// It has everything published for it.
    Current,
}

impl HostState {
    /// Its name, as views print it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Revoked => "revoked",
            HostState::Lost => "lost",
            HostState::Silent => "silent",
            HostState::Failing => "failing",
            HostState::Held => "held",
            HostState::Behind => "behind",
            HostState::Current => "current",
        }
    }

    /// Every state, in the summary's order.
    pub const ALL: [HostState; 7] = [
        HostState::Current,
        HostState::Behind,
        HostState::Held,
        HostState::Failing,
        HostState::Silent,
        HostState::Revoked,
        HostState::Lost,
    ];
}

/// One host's state for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryView {
    /// Installed (and its hook, if any, did not fail).
    Installed,
    /// Installed, but its hook failed.
    Failed,
    /// Held or refused.
    Held,
    /// Not installed: withdrawn.
    Withdrawn,
    /// Not installed: a later version replaced it.
    Superseded,
    /// Sent, no receipt or poll says more yet.
    Offered,
    /// Not sent yet.
    Pending,
    /// Not installed and the host is silent.
    Silent,
}

impl EntryView {
    /// Its name, as views print it.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryView::Installed => "installed",
            EntryView::Failed => "failed",
            EntryView::Held => "held",
            EntryView::Withdrawn => "withdrawn",
            EntryView::Superseded => "superseded",
            EntryView::Offered => "offered",
            EntryView::Pending => "pending",
            EntryView::Silent => "silent",
        }
    }
}

/// One target of a host.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TargetView {
    /// The target.
    pub target: Target,
    /// The newest seq it has applied, by its last poll or a later receipt.
    pub applied: u64,
    /// The newest seq the store has.
    pub newest: u64,
    /// The entry it is held at, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_at: Option<u64>,
    /// The newest seq the server sent it, if it sent any after `applied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered: Option<u64>,
}

/// Why a host needs attention, one line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Attention {
    /// `silent`, `hook-failed`, `held`, `behind`, `alarm`, `reboot-required`,
    /// `certificate-expiring`, `waits-at-withdrawal`, `receipts-dropped`.
    pub kind: &'static str,
    /// What to know, in words.
    pub message: String,
}

/// One host, as every view shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostView {
    /// Its id.
    pub client_id: ClientId,
    /// Its state.
    pub state: HostState,
    /// Whether it needs attention (counts toward `--max-attention`).
    pub needs_attention: bool,
    /// Its last poll or receipt, whichever is later.
    pub last_contact: Published,
    /// Seconds since then.
    pub last_contact_age: u64,
    /// No contact for this long makes it silent.
    pub silent_after: u64,
    /// Whether its last poll came over mutual TLS.
    pub authenticated: bool,
    /// Its targets.
    pub targets: Vec<TargetView>,
    /// Its raised log alarms, with when each was raised.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub alarms: BTreeMap<AlarmName, Published>,
    /// What its receipts said of each entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryState>,
    /// The problems its polls reported (hosts without receipts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Its receipt chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptBook>,
    /// Days until its certificate expires (negative: expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_days_left: Option<i64>,
    /// A reboot is required for what it installed.
    pub reboot_required: bool,
    /// Why it needs attention.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<Attention>,
}

/// The fleet: every host, and the count per state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FleetView {
    /// Hosts per state.
    pub summary: BTreeMap<&'static str, usize>,
    /// Hosts that need attention.
    pub needing_attention: usize,
    /// The store's log size, and the largest one a host said it verified: more means
    /// entries exist that are not on this server (a replica behind).
    pub log_size: u64,
    /// See `log_size`.
    pub newest_log_seen: u64,
    /// Every host, worst state first, then by id.
    pub hosts: Vec<HostView>,
}

/// One release (the newest version of a file name on each target that has it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseView {
    /// The file name.
    pub file_name: FileName,
    /// The entries that make the release, one per target.
    pub entries: Vec<ReleaseEntry>,
    /// The hosts that should have it.
    pub hosts: usize,
    /// Hosts per state (`installed`, `offered`, `held`, `failed`, `pending`,
    /// `silent`, `withdrawn`, `superseded`).
    pub counts: BTreeMap<&'static str, usize>,
    /// The hosts per state, except `installed`.
    pub lists: BTreeMap<&'static str, Vec<ClientId>>,
    /// Seconds from publish until 50, 95 and 99 % of `hosts` had installed it (absent:
    /// not yet).
    pub seconds_to: BTreeMap<&'static str, Option<u64>>,
}

/// An entry of a release.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseEntry {
    /// Its target.
    pub target: Target,
    /// Its seq.
    pub seq: u64,
    /// Its content's hash.
    pub file_hash: FileHash,
    /// When it was published.
    pub published: Published,
    /// It was withdrawn.
    pub withdrawn: bool,
}

/// The fleet view of `clients` against `store`.
pub fn fleet(clients: &[ClientStatus], store: &StoreFacts, rules: &ViewRules) -> FleetView {
    let mut hosts: Vec<HostView> = clients.iter().map(|c| host(c, store, rules)).collect();
    hosts.sort_by(|a, b| a.state.cmp(&b.state).then_with(|| a.client_id.cmp(&b.client_id)));
    let mut summary: BTreeMap<&'static str, usize> = HostState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for host in &hosts {
        *summary.entry(host.state.as_str()).or_default() += 1;
    }
    FleetView {
        summary,
        needing_attention: hosts.iter().filter(|h| h.needs_attention).count(),
        log_size: store.log_size,
        newest_log_seen: clients.iter().filter_map(|c| c.log_size).max().unwrap_or(0),
        hosts,
    }
}

/// One host's view.
pub fn host(client: &ClientStatus, store: &StoreFacts, rules: &ViewRules) -> HostView {
    let last_contact = last_contact(client);
    let age = rules.now.saturating_sub(last_contact);
    let silent_after = client.next_poll_within.map_or(DEFAULT_SILENT_AFTER, |n| n.saturating_mul(3).max(1));
    let mut targets: Vec<&Target> = client.since.keys().collect();
    if !targets.contains(&&Target::All) {
        targets.push(&Target::All);
    }
    targets.sort();
    let targets: Vec<TargetView> = targets.into_iter().map(|t| target_view(client, store, t)).collect();

    let mut attention = Vec::new();
    let revoked = client.certificate.as_ref().is_some_and(|c| rules.revoked_serials.contains(&c.serial));
    let failing: Vec<&EntryState> = failing_hooks(client, store);
    for hook in &failing {
        attention.push(Attention {
            kind: "hook-failed",
            message: format!(
                "{} (seq {} of {}): its hook failed, attempt {}",
                hook.file_name.as_ref().map_or("?", |n| n.as_str()),
                hook.seq,
                hook.target,
                hook.detail.as_deref().unwrap_or("?")
            ),
        });
    }
    let failing_reported = failing_by_reports(client);
    for problem in &failing_reported {
        attention.push(Attention {
            kind: "hook-failed",
            message: format!(
                "seq {} of {}: its hook failed (reported {})",
                problem.seq, problem.target, problem.last_seen
            ),
        });
    }
    for (alarm, since) in &client.alarms {
        attention.push(Attention { kind: "alarm", message: format!("{alarm} (raised {since})") });
    }
    let held: Vec<&TargetView> = targets.iter().filter(|t| t.held_at.is_some()).collect();
    for target in &held {
        let seq = target.held_at.unwrap_or(0);
        let why = held_reason(client, &target.target, seq).unwrap_or_else(|| "its report did not say".into());
        attention
            .push(Attention { kind: "held", message: format!("{} held at seq {seq}: {why}", target.target) });
    }
    let behind: Vec<&TargetView> =
        targets.iter().filter(|t| t.applied < t.newest && t.held_at.is_none()).collect();
    for target in &behind {
        let offered = target.offered.map(|s| format!(", sent up to seq {s}")).unwrap_or_default();
        attention.push(Attention {
            kind: "behind",
            message: format!(
                "{} {} behind ({}/{}{offered})",
                target.target,
                target.newest - target.applied,
                target.applied,
                target.newest
            ),
        });
    }
    let certificate_days_left = client.certificate.as_ref().map(|c| {
        let left = c.not_after.unix_seconds() as i64 - rules.now as i64;
        left.div_euclid(86_400)
    });
    if let Some(c) = &client.certificate
        && c.not_after.unix_seconds() < rules.now.saturating_add(EXPIRING_WITHIN)
    {
        attention.push(Attention {
            kind: "certificate-expiring",
            message: format!(
                "its certificate expires {} ({} days left)",
                c.not_after,
                certificate_days_left.unwrap_or(0)
            ),
        });
    }
    if client.reboot_required {
        attention.push(Attention {
            kind: "reboot-required",
            message: "a reboot is required for what it installed".into(),
        });
    }
    let state = if revoked {
        HostState::Revoked
    } else if age > rules.lost_after {
        HostState::Lost
    } else if age > silent_after {
        HostState::Silent
    } else if !failing.is_empty() || !failing_reported.is_empty() || !client.alarms.is_empty() {
        HostState::Failing
    } else if !held.is_empty() {
        HostState::Held
    } else if !behind.is_empty() {
        HostState::Behind
    } else {
        HostState::Current
    };
    if state == HostState::Silent {
        attention.insert(
            0,
            Attention {
                kind: "silent",
                message: format!("no contact for {} (silent after {})", words(age), words(silent_after)),
            },
        );
    }
    let needs_attention = match state {
        HostState::Revoked | HostState::Lost => false,
        HostState::Current => !attention.is_empty(),
        _ => true,
    };
    HostView {
        client_id: client.client_id.clone(),
        state,
        needs_attention,
        last_contact: Published::from_unix_seconds(last_contact),
        last_contact_age: age,
        silent_after,
        authenticated: client.authenticated,
        targets,
        alarms: client.alarms.clone(),
        entries: client.entries.clone(),
        problems: client.problems.clone(),
        receipts: client.receipts.clone(),
        certificate_days_left,
        reboot_required: client.reboot_required,
        attention,
    }
}

/// The release of `name`: its newest version on each target that has one, and every
/// concerned host's state for it.
pub fn release(
    name: &FileName,
    clients: &[ClientStatus],
    store: &StoreFacts,
    rules: &ViewRules,
) -> Option<ReleaseView> {
    let hosts: Vec<HostView> = clients.iter().map(|c| host(c, store, rules)).collect();
    release_of(name, clients, &hosts, store)
}

/// [`release`] for each of `names`, judging each host once.
pub fn releases(
    names: &[FileName],
    clients: &[ClientStatus],
    store: &StoreFacts,
    rules: &ViewRules,
) -> Vec<ReleaseView> {
    let hosts: Vec<HostView> = clients.iter().map(|c| host(c, store, rules)).collect();
    names.iter().filter_map(|name| release_of(name, clients, &hosts, store)).collect()
}

/// [`release`] with each client's view already made (`views[i]` is `clients[i]`'s).
fn release_of(
    name: &FileName,
    clients: &[ClientStatus],
    views: &[HostView],
    store: &StoreFacts,
) -> Option<ReleaseView> {
    let mut tally = ReleaseTally::new(name, store, true)?;
    for (client, host) in clients.iter().zip(views) {
        tally.add(client, host);
    }
    Some(tally.finish())
}

/// One release's view made a host at a time ([`ReleaseTally::add`]), so that a caller
/// need not hold every host's status at once (the server's fleet gauges read them in
/// batches). Holds per host only its install delay, and its id when the lists are kept.
#[derive(Debug)]
pub struct ReleaseTally<'a> {
    name: FileName,
    /// The newest entry of the release per target.
    newest: BTreeMap<&'a Target, &'a StoreEntry>,
    counts: BTreeMap<&'static str, usize>,
    /// `None`: not kept (the gauges need only the counts).
    lists: Option<BTreeMap<&'static str, Vec<ClientId>>>,
    install_delays: Vec<u64>,
    hosts: usize,
}

impl<'a> ReleaseTally<'a> {
    /// The tally of release `name` of `store`, or `None` when no entry has that name.
    /// `keep_lists`: also keep the ids of the hosts per state ([`ReleaseView::lists`]).
    pub fn new(name: &FileName, store: &'a StoreFacts, keep_lists: bool) -> Option<ReleaseTally<'a>> {
        let mut newest: BTreeMap<&Target, &StoreEntry> = BTreeMap::new();
        for entry in store.entries.iter().filter(|e| e.file_name == *name) {
            match newest.get(&entry.target) {
                Some(had) if had.seq > entry.seq => {}
                _ => {
                    newest.insert(&entry.target, entry);
                }
            }
        }
        (!newest.is_empty()).then(|| ReleaseTally {
            name: name.clone(),
            newest,
            counts: BTreeMap::new(),
            lists: keep_lists.then(BTreeMap::new),
            install_delays: Vec::new(),
            hosts: 0,
        })
    }

    /// Counts one host (`host` is [`host`]'s view of `client`).
    pub fn add(&mut self, client: &ClientStatus, host: &HostView) {
        if matches!(host.state, HostState::Revoked | HostState::Lost) {
            return;
        }
        // The entries of this release the host gets; the best state among them.
        let mine: Vec<&&StoreEntry> = self
            .newest
            .iter()
            .filter(|(t, _)| client.since.contains_key(**t) || ***t == Target::All)
            .map(|(_, e)| e)
            .collect();
        let Some(first) = mine.first() else { return };
        self.hosts += 1;
        let (view, at, entry) = mine
            .iter()
            .map(|e| {
                let (view, at) = entry_view(client, e, host);
                (view, at, e)
            })
            .min_by_key(|(view, _, _)| rank(*view))
            .map(|(v, a, e)| (v, a, *e))
            .unwrap_or((EntryView::Pending, None, first));
        *self.counts.entry(view.as_str()).or_default() += 1;
        if view == EntryView::Installed {
            // A host whose install time is unknown (an older fts, which sends no
            // receipts, and no answer recorded) counts as installed but not in the
            // times: its next poll's time would make them grow for ever.
            if let Some(at) = at {
                self.install_delays.push(at.saturating_sub(entry.published));
            }
        } else if let Some(lists) = &mut self.lists {
            lists.entry(view.as_str()).or_default().push(client.client_id.clone());
        }
    }

    /// The release's view of the hosts added.
    pub fn finish(mut self) -> ReleaseView {
        self.install_delays.sort_unstable();
        let hosts = self.hosts;
        let seconds_to = [("50%", 50usize), ("95%", 95), ("99%", 99)]
            .into_iter()
            .map(|(label, percent)| {
                // The delay by which `percent` % of the hosts had it: the n-th fastest.
                let needed = (hosts * percent).div_ceil(100).max(1);
                (label, self.install_delays.get(needed - 1).copied())
            })
            .collect();
        ReleaseView {
            file_name: self.name,
            entries: self
                .newest
                .values()
                .map(|e| ReleaseEntry {
                    target: e.target.clone(),
                    seq: e.seq,
                    file_hash: e.file_hash,
                    published: Published::from_unix_seconds(e.published),
                    withdrawn: e.withdrawn,
                })
                .collect(),
            hosts,
            counts: self.counts,
            lists: self.lists.unwrap_or_default(),
            seconds_to,
        }
    }
}

/// The names of every file in the store, newest publish last.
pub fn file_names(store: &StoreFacts) -> Vec<FileName> {
    let mut seen = std::collections::HashSet::new();
    let mut names: Vec<FileName> = store
        .entries
        .iter()
        .rev()
        .filter(|e| seen.insert(&e.file_name))
        .map(|e| e.file_name.clone())
        .collect();
    names.reverse();
    names
}

/// Which state of a host is the most advanced, for a release it gets on several
/// targets.
fn rank(view: EntryView) -> u8 {
    match view {
        EntryView::Installed => 0,
        EntryView::Superseded => 1,
        EntryView::Withdrawn => 2,
        EntryView::Failed => 3,
        EntryView::Held => 4,
        EntryView::Offered => 5,
        EntryView::Pending => 6,
        EntryView::Silent => 7,
    }
}

/// A host's state for one entry, and when it got there (Unix seconds) when known.
pub fn entry_view(client: &ClientStatus, entry: &StoreEntry, host: &HostView) -> (EntryView, Option<u64>) {
    let since = client.since.get(&entry.target).copied().unwrap_or(0);
    if let Some(state) = client.entries.iter().find(|e| e.target == entry.target && e.seq == entry.seq) {
        let at = Some(state.at.unix_seconds());
        let applied = !matches!(state.outcome.as_str(), "held" | "refused");
        // News to the last poll, or a fact the poll agrees with (it applied the
        // entry): otherwise the poll, which came later, says what is true now.
        if is_fresh(client, state) || (applied && since >= entry.seq) {
            return match state.outcome.as_str() {
                "installed" | "hook-ok" => (EntryView::Installed, at),
                "hook-failed" => (EntryView::Failed, at),
                "withdrawn" | "withdrawn-installed" => (EntryView::Withdrawn, at),
                "superseded" => (EntryView::Superseded, at),
                _ => (EntryView::Held, at),
            };
        }
    }
    if entry.withdrawn {
        return (EntryView::Withdrawn, None);
    }
    // The same content installed under another entry (a version published again,
    // the same file for another target): the host has it.
    if let Some(same) = client.entries.iter().find(|e| {
        matches!(e.outcome.as_str(), "installed" | "hook-ok")
            && e.file_name.as_ref() == Some(&entry.file_name)
            && e.file_hash.as_ref() == Some(&entry.file_hash)
            && (is_fresh(client, e) || client.since.get(&e.target).is_some_and(|&s| s >= e.seq))
    }) {
        return (EntryView::Installed, Some(same.at.unix_seconds()));
    }
    let offered = client.offered.get(&entry.target).filter(|o| o.seq >= entry.seq);
    if since >= entry.seq {
        // Installed by the poll's word: when is known only to within the answer
        // that sent it.
        return (EntryView::Installed, offered.map(|o| o.at.unix_seconds()));
    }
    if client.held.get(&entry.target) == Some(&entry.seq) {
        return (EntryView::Held, None);
    }
    if host.state == HostState::Silent {
        return (EntryView::Silent, None);
    }
    match offered {
        Some(offered) => (EntryView::Offered, Some(offered.at.unix_seconds())),
        None => (EntryView::Pending, None),
    }
}

/// Whether a receipt's word about an entry is news to the host's last poll: its
/// number is above the count the host declared then (a later poll would have
/// counted it).
fn is_fresh(client: &ClientStatus, state: &EntryState) -> bool {
    let declared = client.receipts.as_ref().and_then(|book| book.declared);
    declared.is_none_or(|declared| state.receipt > declared)
}

/// One target of a host: applied by its last poll or a later receipt.
fn target_view(client: &ClientStatus, store: &StoreFacts, target: &Target) -> TargetView {
    let since = client.since.get(target).copied().unwrap_or(0);
    // Receipts since the last poll name what the host applied after it; every
    // outcome but a hold or refusal applies the entry.
    let fresh = |e: &&EntryState| e.target == *target && is_fresh(client, e);
    let by_receipts = client
        .entries
        .iter()
        .filter(fresh)
        .filter(|e| !matches!(e.outcome.as_str(), "held" | "refused"))
        .map(|e| e.seq)
        .max()
        .unwrap_or(0);
    let applied = since.max(by_receipts);
    let held_by_receipt = client
        .entries
        .iter()
        .filter(fresh)
        .filter(|e| e.outcome == "held" && e.seq > applied)
        .map(|e| e.seq)
        .max();
    let held_at = held_by_receipt.or_else(|| client.held.get(target).copied().filter(|&seq| seq > applied));
    let offered = client.offered.get(target).map(|o| o.seq).filter(|&seq| seq > applied);
    TargetView { target: target.clone(), applied, newest: store.newest(target), held_at, offered }
}

/// Why a target is held at `seq`: a receipt's reason, else a poll's report.
fn held_reason(client: &ClientStatus, target: &Target, seq: u64) -> Option<String> {
    if let Some(e) = client.entries.iter().find(|e| e.target == *target && e.seq == seq) {
        return e.detail.clone();
    }
    client.problems.iter().rev().find(|p| p.target == *target && p.seq == seq).map(|p| p.reason.to_string())
}

/// The failed hooks a host without receipts (an older fts) reported in its polls:
/// those of the entry each target is at now (a later entry applied since moved on).
fn failing_by_reports(client: &ClientStatus) -> Vec<&Problem> {
    client
        .problems
        .iter()
        .filter(|p| {
            matches!(p.reason, fts_proto::RejectReason::HookFailed | fts_proto::RejectReason::HookGivenUp)
        })
        .filter(|p| client.since.get(&p.target) == Some(&p.seq))
        .filter(|p| !client.entries.iter().any(|e| e.target == p.target && e.seq == p.seq))
        .collect()
}

/// The failed hooks of the newest version of each file this host has.
fn failing_hooks<'a>(client: &'a ClientStatus, store: &StoreFacts) -> Vec<&'a EntryState> {
    client
        .entries
        .iter()
        .filter(|e| e.outcome == "hook-failed")
        // Where the host still has the entry (its last poll, or news after it).
        .filter(|e| is_fresh(client, e) || client.since.get(&e.target).is_some_and(|&s| s >= e.seq))
        .filter(|failed| {
            // Not if a later version of the same file was installed since.
            let name = failed
                .file_name
                .as_ref()
                .or_else(|| store.entry(&failed.target, failed.seq).map(|e| &e.file_name));
            !client.entries.iter().any(|e| {
                e.target == failed.target
                    && matches!(e.outcome.as_str(), "installed" | "hook-ok")
                    && (e.seq > failed.seq || (e.seq == failed.seq && e.at >= failed.at))
                    && (e.file_name.as_ref() == name || name.is_none())
            })
        })
        .collect()
}

/// Its last poll (Unix seconds).
fn last_poll(client: &ClientStatus) -> u64 {
    client.last_poll.unix_seconds()
}

/// The later of its last poll and its last receipt (Unix seconds).
fn last_contact(client: &ClientStatus) -> u64 {
    let receipt =
        client.receipts.as_ref().and_then(|b| b.last_received.as_ref()).map_or(0, |t| t.unix_seconds());
    last_poll(client).max(receipt)
}

/// A duration in words: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn words(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}
