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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fts_proto::ErrorChain;
use fts_status::StatusBackend;
use fts_status::fleet::{self, EXPIRING_WITHIN, HostState, StoreFacts, ViewRules};
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

/// The fleet's figures now.
pub fn figures(status: &dyn StatusBackend, snapshot: &StoreSnapshot) -> fts_status::Result<FleetFigures> {
    let clients = status.clients()?;
    let server = status.read_server();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rules = ViewRules {
        now,
        lost_after: fleet::DEFAULT_LOST_AFTER,
        revoked_serials: server.map(|s| s.revoked_serials.into_iter().collect()).unwrap_or_default(),
    };
    let facts = StoreFacts::of(snapshot);
    let view = fleet::fleet(&clients, &facts, &rules);
    let mut alarms = std::collections::BTreeMap::new();
    for host in view.hosts.iter().filter(|h| !matches!(h.state, HostState::Revoked | HostState::Lost)) {
        for alarm in host.alarms.keys() {
            *alarms.entry(alarm.as_str().to_owned()).or_insert(0) += 1;
        }
    }
    let expiring = view
        .hosts
        .iter()
        .filter(|h| h.state != HostState::Revoked)
        .filter(|h| h.certificate_days_left.is_some_and(|d| d * 86_400 < EXPIRING_WITHIN as i64))
        .count();
    let names: Vec<_> = fleet::file_names(&facts).into_iter().rev().take(MAX_RELEASES).collect();
    let releases = fleet::releases(&names, &clients, &facts, &rules)
        .into_iter()
        .map(|release| ReleaseFigures {
            file: release.file_name.to_string(),
            published: release.entries.iter().map(|e| e.published.unix_seconds()).max().unwrap_or(0),
            states: release.counts.iter().map(|(state, n)| (*state, *n)).collect(),
            seconds_to_95: release.seconds_to.get("95%").copied().flatten(),
        })
        .collect();
    Ok(FleetFigures {
        hosts: view.summary.iter().map(|(state, n)| (*state, *n)).collect(),
        silent: view.summary.get("silent").copied().unwrap_or(0),
        alarms,
        expiring,
        releases,
    })
}
