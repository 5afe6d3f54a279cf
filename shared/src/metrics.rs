//! Prometheus metrics for every process, served as text at `/metrics`.
//!
//! One registry per process (the crate's default registry); each process registers
//! the families it uses on first touch through the lazily built statics below.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const JOB_BUCKETS: &[f64] = &[0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

macro_rules! metric {
    ($name:ident: $t:ty = $e:expr) => {
        pub static $name: LazyLock<$t> = LazyLock::new(|| $e.unwrap_or_else(|e| panic!("metric registration: {e}")));
    };
}

metric!(HTTP_REQUESTS: IntCounterVec = register_int_counter_vec!(
    "ferry_http_requests_total", "HTTP requests by route, method and status.", &["route", "method", "status"]));
metric!(HTTP_CONNECTIONS_REFUSED: IntCounter = register_int_counter!(
    "ferry_http_connections_refused_total", "Connections answered 503 and closed at once because their client address already held http.max_connections_per_address."));
metric!(HTTP_DURATION: HistogramVec = register_histogram_vec!(
    "ferry_http_request_duration_seconds", "HTTP request latency by route.", &["route", "method"], LATENCY_BUCKETS.to_vec()));
metric!(BYTES_RECEIVED: IntCounterVec = register_int_counter_vec!(
    "ferry_bytes_received_total", "Upload bytes written to staging.", &["kind"]));
metric!(BYTES_SERVED: IntCounterVec = register_int_counter_vec!(
    "ferry_bytes_served_total", "File bytes sent to clients.", &["kind"]));
metric!(JOBS: IntCounterVec = register_int_counter_vec!(
    "ferry_jobs_total", "Jobs settled by queue and outcome (done, retried, failed).", &["queue", "outcome"]));
metric!(JOB_DURATION: HistogramVec = register_histogram_vec!(
    "ferry_job_duration_seconds", "Job handling time by queue and job kind (assemble, replicate, verify, delete, drop_replica).",
    &["queue", "kind"], JOB_BUCKETS.to_vec()));
metric!(JOB_WAIT: HistogramVec = register_histogram_vec!(
    "ferry_job_wait_seconds", "Time from queued to started of a job's first attempt, by job kind.", &["kind"], JOB_BUCKETS.to_vec()));
metric!(JOBS_IN_FLIGHT: IntGaugeVec = register_int_gauge_vec!(
    "ferry_jobs_in_flight", "Jobs a worker is running right now, by job kind and worker id.", &["kind", "worker"]));
metric!(JOB_PANICS: IntCounterVec = register_int_counter_vec!(
    "ferry_job_panics_total", "Jobs whose handler panicked (caught, counted as a failed attempt and retried), by job kind.", &["kind"]));
metric!(JOBS_OVERDUE: IntGauge = register_int_gauge!(
    "ferry_jobs_overdue", "Open job records (queued, active, retrying) older than the time limit plus the reconcile margin, seen by the monitor's last round; each is re-enqueued."));
metric!(JOBS_REQUEUED: IntCounterVec = register_int_counter_vec!(
    "ferry_jobs_requeued_total", "Jobs the monitor re-enqueued because their message was lost, by job kind.", &["kind"]));
metric!(JOBS_DEAD: IntGauge = register_int_gauge!(
    "ferry_jobs_dead", "Dead letters not yet replayed or discarded (job records in state dead)."));
metric!(RSYNC_BYTES: IntCounterVec = register_int_counter_vec!(
    "ferry_rsync_bytes_total", "Bytes copied to nodes with rsync.", &["node"]));
metric!(RSYNC_DURATION: HistogramVec = register_histogram_vec!(
    "ferry_rsync_duration_seconds", "rsync + remote verification time per replica.", &["node"], JOB_BUCKETS.to_vec()));
metric!(QUEUE_READY: IntGaugeVec = register_int_gauge_vec!(
    "ferry_queue_ready", "Messages ready in a RabbitMQ queue of Ferry's (job, retry tier, dead letter), read by the monitor with a passive declare every reconcile round.", &["queue"]));
metric!(QUEUE_CONSUMERS: IntGaugeVec = register_int_gauge_vec!(
    "ferry_queue_consumers", "Consumers of a RabbitMQ queue of Ferry's, read with ferry_queue_ready.", &["queue"]));
metric!(OUTBOX_BACKLOG: IntGauge = register_int_gauge!(
    "ferry_outbox_backlog", "Jobs written to the outbox and not yet confirmed by the broker (last relay look)."));
metric!(NODE_UP: IntGaugeVec = register_int_gauge_vec!(
    "ferry_node_up", "1 when the node's last probe succeeded.", &["node"]));
metric!(NODE_SSH_UP: IntGaugeVec = register_int_gauge_vec!(
    "ferry_node_ssh_up",
    "1 when the node's sshd (every copy to the node goes through it) sent an SSH identification at the monitor's \
     last check.",
    &["node"]));
metric!(NODE_WRITABLE: IntGaugeVec = register_int_gauge_vec!(
    "ferry_node_writable",
    "1 when the node agent's last write check (a file created, written, fdatasynced and removed at its storage root) \
     passed; 0 when it failed and the node takes no new copy.",
    &["node"]));
metric!(NODE_FREE_BYTES: IntGaugeVec = register_int_gauge_vec!(
    "ferry_node_free_bytes", "Free bytes under the node's storage root.", &["node"]));
metric!(UNDER_REPLICATED: IntGauge = register_int_gauge!(
    "ferry_under_replicated_files",
    "Live files with fewer live replicas on active nodes than wanted, found by the monitor's last complete pass over \
     the files (monitor.sweep_files per round; set when a pass ends)."));

pub fn observe(histogram: &HistogramVec, labels: &[&str], elapsed: Duration) {
    histogram.with_label_values(labels).observe(elapsed.as_secs_f64());
}

/// The registry in Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for text output.
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

metric!(CORRUPT_REPLICAS: IntCounterVec = register_int_counter_vec!(
    "ferry_corrupt_replicas_total", "Replicas found corrupt or missing by a scrub, moved aside and repaired.", &["node"]));
