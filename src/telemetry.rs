//! Logging: human-readable lines by default, JSON lines with `--log-format json`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Install the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. `None` if another recorder
/// was installed first (then `/metrics` says so rather than failing).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let latency = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let batch = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &latency)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("pizza_orders_raft_batch_size".into()), &batch))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("pizza_orders_read_index_round_size".into()), &batch)
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Histogram samples wait in the recorder until upkeep folds them into buckets. A scrape of
/// `/metrics` runs it, but on a node nobody scrapes every sample was kept: the node grew by
/// ~17 bytes a request (12 MB over 720k reads). Runs it every 5 s on the current runtime, as
/// the crate's own `install()` does (which would also start an HTTP listener of its own).
pub fn spawn_metrics_upkeep() {
    if let Some(handle) = prometheus() {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}
