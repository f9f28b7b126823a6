//! The fleet view as gauges on `/metrics`, for dashboards and alerts
//! (`scripts/prometheus/fts-alerts.yml`): per release (the newest version of each file
//! name), how many hosts are in each state, when it was published and how long it took
//! to reach 95 % of its hosts; per fleet state, how many hosts; silent hosts; hosts
//! with each alarm; certificates expiring within 7 days.
//!
//! Computed from every host's status and the store's entries (fts-status's `fleet`) on
//! a blocking thread every `--metrics-listen` interval (30 s), not per poll: reading
//! every host's status costs in proportion to the fleet, and a dashboard needs no
//! more. The same rules as `fts status`, so the two never disagree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fts_proto::ErrorChain;
use fts_status::StatusBackend;
use fts_status::fleet::{self, EXPIRING_WITHIN, HostState, ReleaseTally, StoreFacts, ViewRules};
use fts_store::StoreSnapshot;

use crate::metrics::{FleetFigures, Metrics, ReleaseFigures};

/// How many releases get gauges: the newest names (a store of years keeps its
/// gauges, and so the scrape, bounded).
pub const MAX_RELEASES: usize = 20;

/// Updates the fleet gauges every `every`, until aborted.
pub async fn update_every(
    status: &Arc<dyn StatusBackend>,
    snapshot: impl Fn() -> Arc<StoreSnapshot>,
    metrics: &Metrics,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (status, snapshot) = (Arc::clone(status), snapshot());
        match tokio::task::spawn_blocking(move || figures(status.as_ref(), &snapshot)).await {
            Ok(Ok(figures)) => metrics.set_fleet(&figures),
            Ok(Err(e)) => tracing::warn!(error = %ErrorChain(&e), "cannot compute the fleet gauges"),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "computing the fleet gauges failed"),
        }
    }
}

/// Hosts read at a time: the figures never hold more statuses than this, so the
/// server's memory does not grow with the fleet every time they are computed (holding
/// all 10,000 statuses of a fleet at once cost 50 MiB a time, which glibc's arenas kept).
const BATCH: usize = 1_000;

/// The fleet's figures now: the same as `fts status` and `fts status --release` show,
/// computed a batch of hosts at a time.
pub fn figures(status: &dyn StatusBackend, snapshot: &StoreSnapshot) -> fts_status::Result<FleetFigures> {
    let server = status.read_server();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rules = ViewRules {
        now,
        lost_after: fleet::DEFAULT_LOST_AFTER,
        revoked_serials: server.map(|s| s.revoked_serials.into_iter().collect()).unwrap_or_default(),
    };
    let facts = StoreFacts::of(snapshot);
    let names: Vec<_> = fleet::file_names(&facts).into_iter().rev().take(MAX_RELEASES).collect();
    let mut releases: Vec<ReleaseTally> =
        names.iter().filter_map(|name| ReleaseTally::new(name, &facts, false)).collect();
    let mut hosts: BTreeMap<&'static str, usize> = HostState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut alarms = BTreeMap::new();
    let mut expiring = 0;
    status.clients_in_batches(BATCH, &mut |batch| {
        for client in &batch {
            let host = fleet::host(client, &facts, &rules);
            *hosts.entry(host.state.as_str()).or_default() += 1;
            if !matches!(host.state, HostState::Revoked | HostState::Lost) {
                for alarm in host.alarms.keys() {
                    *alarms.entry(alarm.as_str().to_owned()).or_insert(0) += 1;
                }
            }
            if host.state != HostState::Revoked
                && host.certificate_days_left.is_some_and(|d| d * 86_400 < EXPIRING_WITHIN as i64)
            {
                expiring += 1;
            }
            for release in &mut releases {
                release.add(client, &host);
            }
        }
    })?;
    let releases = releases
        .into_iter()
        .map(ReleaseTally::finish)
        .map(|release| ReleaseFigures {
            file: release.file_name.to_string(),
            published: release.entries.iter().map(|e| e.published.unix_seconds()).max().unwrap_or(0),
            states: release.counts.iter().map(|(state, n)| (*state, *n)).collect(),
            seconds_to_95: release.seconds_to.get("95%").copied().flatten(),
        })
        .collect();
    Ok(FleetFigures {
        silent: hosts.get("silent").copied().unwrap_or(0),
        hosts: hosts.into_iter().collect(),
        alarms,
        expiring,
        releases,
    })
}
