//! The service's Prometheus metrics (`GET /metrics` on the lookup listener).
//!
//! Recorded through the `metrics` facade at the places events happen; the
//! process-wide recorder is `metrics-exporter-prometheus` without its HTTP
//! listener: the route renders its handle. Label values are fixed words
//! (never a hostname or an account), so every series is bounded. Each call
//! names its labels literally: the key is static, nothing is allocated.

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const PATH: &str = "/metrics";
/// The text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Histograms are drained into their buckets at least this often, scraped or not.
pub const UPKEEP: Duration = Duration::from_secs(5);

/// Seconds: from a cached DNS answer (sub-millisecond) to a DNS timeout.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (services built in one test
/// process share it); `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics: cannot build the recorder");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = ::metrics::set_global_recorder(recorder) {
                tracing::error!(error = %e, "metrics: a recorder is already installed");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The exposition text; empty when no recorder of ours is installed.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Drains histograms every [`UPKEEP`] until `stop`: unscraped, they would grow.
pub async fn upkeep(stop: impl std::future::Future<Output = ()>) {
    let Some(handle) = install() else { return };
    let mut stop = std::pin::pin!(stop);
    let mut ticks = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticks.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    describe_counter!("cname_guard_lookups_total", "Lookups (/v1/ownership and /ext_authz) by how they were answered.");
    describe_counter!("cname_guard_lookup_unavailable_total", "Lookups answered 503 because DNS or the store failed.");
    describe_histogram!("cname_guard_lookup_duration_seconds", Unit::Seconds, "Time to answer a lookup.");
    describe_counter!("cname_guard_dns_queries_total", "DNS questions sent, by record type and answer code.");
    describe_histogram!("cname_guard_dns_query_duration_seconds", Unit::Seconds, "Time for a DNS question.");
    describe_counter!("cname_guard_dns_cache_hits_total", "Lookup DNS questions answered without asking DNS.");
    describe_counter!("cname_guard_dns_cache_misses_total", "Lookup DNS questions the cache passed to DNS.");
    describe_gauge!("cname_guard_dns_cache_entries", "DNS answers held in the lookup cache.");
    describe_counter!("cname_guard_dns_budget_refusals_total", "DNS questions refused by the in-flight budget.");
    describe_counter!("cname_guard_store_errors_total", "Store queries that failed, by the part asking.");
    describe_histogram!("cname_guard_store_query_duration_seconds", Unit::Seconds, "Store reads on the lookup path.");
    describe_counter!("cname_guard_readyz_total", "/readyz answers by result.");
    describe_counter!("cname_guard_verifier_checks_total", "Verifier checks by outcome.");
    describe_counter!("cname_guard_verifier_transitions_total", "Status changes written by the verifier.");
    describe_gauge!("cname_guard_verifier_hostnames", "Active and moved hostnames the verifier re-checks.");
    describe_gauge!("cname_guard_verifier_pass_seconds", Unit::Seconds, "A full re-check pass at the DNS budget.");
    describe_gauge!("cname_guard_feed_head_sequence", "The change feed's newest sequence number.");
    describe_gauge!("cname_guard_feed_waiting", "Change feed long polls waiting now.");
    describe_counter!("cname_guard_feed_polls_total", "Change feed requests by result.");
    describe_counter!("cname_guard_admin_requests_total", "Management API requests by route template and status.");
    describe_histogram!("cname_guard_admin_request_duration_seconds", Unit::Seconds, "Management API latency.");
    describe_counter!("cname_guard_certificates_issued_total", "Certificates issued or renewed.");
    describe_counter!("cname_guard_certificate_failures_total", "Certificate attempts that failed.");
    describe_gauge!("cname_guard_xds_streams", "SDS/ADS streams open now.");
}

/// How the lookup route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The filter's verdict on the answer is to serve.
    Allowed,
    /// Found, but the filter's verdict is an error page.
    Denied,
    /// 404: the host is unknown.
    NotFound,
    /// 503: DNS could not answer.
    DnsUnavailable,
    /// 503: the store could not answer.
    StoreUnavailable,
    /// 503: shed past the concurrency limit.
    Overloaded,
    BadRequest,
}

pub fn lookup(result: Lookup, took: Duration) {
    match result {
        Lookup::Allowed => counter!("cname_guard_lookups_total", "result" => "allowed").increment(1),
        Lookup::Denied => counter!("cname_guard_lookups_total", "result" => "denied").increment(1),
        Lookup::NotFound => counter!("cname_guard_lookups_total", "result" => "not_found").increment(1),
        Lookup::DnsUnavailable | Lookup::StoreUnavailable => {
            counter!("cname_guard_lookups_total", "result" => "unavailable").increment(1);
            if result == Lookup::DnsUnavailable {
                counter!("cname_guard_lookup_unavailable_total", "cause" => "dns").increment(1);
            } else {
                counter!("cname_guard_lookup_unavailable_total", "cause" => "store").increment(1);
            }
        }
        Lookup::Overloaded => counter!("cname_guard_lookups_total", "result" => "overloaded").increment(1),
        Lookup::BadRequest => counter!("cname_guard_lookups_total", "result" => "bad_request").increment(1),
    }
    histogram!("cname_guard_lookup_duration_seconds").record(took.as_secs_f64());
}

/// One DNS question's end: `rtype` and `rcode` are fixed words
/// (`A`, `CNAME`...; `noerror`, `nxdomain`, `servfail`, `refused`, `timeout`, `error`).
pub fn dns_query(rtype: &'static str, rcode: &'static str, took: Duration) {
    counter!("cname_guard_dns_queries_total", "type" => rtype, "rcode" => rcode).increment(1);
    histogram!("cname_guard_dns_query_duration_seconds").record(took.as_secs_f64());
}

pub fn dns_cache(hit: bool) {
    if hit {
        counter!("cname_guard_dns_cache_hits_total").increment(1);
    } else {
        counter!("cname_guard_dns_cache_misses_total").increment(1);
    }
}

pub fn dns_cache_entries(entries: u64) {
    gauge!("cname_guard_dns_cache_entries").set(entries as f64);
}

/// A question refused by the budget: its zone's share (`true`) or the overall one.
pub fn dns_budget_refused(zone: bool) {
    if zone {
        counter!("cname_guard_dns_budget_refusals_total", "kind" => "zone").increment(1);
    } else {
        counter!("cname_guard_dns_budget_refusals_total", "kind" => "overall").increment(1);
    }
}

/// Who saw a store query fail.
#[derive(Debug, Clone, Copy)]
pub enum StoreOp {
    Lookup,
    Ready,
    Feed,
    Verifier,
    Admin,
}

pub fn store_error(op: StoreOp) {
    match op {
        StoreOp::Lookup => counter!("cname_guard_store_errors_total", "op" => "lookup").increment(1),
        StoreOp::Ready => counter!("cname_guard_store_errors_total", "op" => "ready").increment(1),
        StoreOp::Feed => counter!("cname_guard_store_errors_total", "op" => "feed").increment(1),
        StoreOp::Verifier => counter!("cname_guard_store_errors_total", "op" => "verifier").increment(1),
        StoreOp::Admin => counter!("cname_guard_store_errors_total", "op" => "admin").increment(1),
    }
}

/// The lookup path's store read (its platform slice).
pub fn store_query(took: Duration) {
    histogram!("cname_guard_store_query_duration_seconds", "op" => "lookup").record(took.as_secs_f64());
}

pub fn ready(ok: bool) {
    if ok {
        counter!("cname_guard_readyz_total", "result" => "ready").increment(1);
    } else {
        counter!("cname_guard_readyz_total", "result" => "unready").increment(1);
        store_error(StoreOp::Ready);
    }
}

/// One verifier check's outcome: `changed`, `same`, `dns_failed`, `skipped`.
pub fn verifier_check(outcome: &'static str) {
    counter!("cname_guard_verifier_checks_total", "outcome" => outcome).increment(1);
}

/// A status change written by the verifier; statuses are the store's fixed words.
pub fn verifier_transition(from: &'static str, to: &'static str) {
    counter!("cname_guard_verifier_transitions_total", "from" => from, "to" => to).increment(1);
}

pub fn verifier_plan(hostnames: u64, pass: Duration) {
    gauge!("cname_guard_verifier_hostnames").set(hostnames as f64);
    gauge!("cname_guard_verifier_pass_seconds").set(pass.as_secs_f64());
}

pub fn feed_head(seq: u64) {
    gauge!("cname_guard_feed_head_sequence").set(seq as f64);
}

/// How a change feed request was answered.
#[derive(Debug, Clone, Copy)]
pub enum Poll {
    Changes,
    Empty,
    Reset,
    Unavailable,
    BadRequest,
}

pub fn feed_poll(result: Poll) {
    match result {
        Poll::Changes => counter!("cname_guard_feed_polls_total", "result" => "changes").increment(1),
        Poll::Empty => counter!("cname_guard_feed_polls_total", "result" => "empty").increment(1),
        Poll::Reset => counter!("cname_guard_feed_polls_total", "result" => "reset").increment(1),
        Poll::Unavailable => counter!("cname_guard_feed_polls_total", "result" => "unavailable").increment(1),
        Poll::BadRequest => counter!("cname_guard_feed_polls_total", "result" => "bad_request").increment(1),
    }
}

/// A long poll waiting; the gauge goes down when it is dropped.
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Waiting {
        gauge!("cname_guard_feed_waiting").increment(1.0);
        Waiting(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!("cname_guard_feed_waiting").decrement(1.0);
    }
}

/// An SDS/ADS stream open; the gauge goes down when it is dropped.
pub struct Stream(());

impl Stream {
    pub fn open() -> Stream {
        gauge!("cname_guard_xds_streams").increment(1.0);
        Stream(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        gauge!("cname_guard_xds_streams").decrement(1.0);
    }
}

pub fn certificate(issued: bool) {
    if issued {
        counter!("cname_guard_certificates_issued_total").increment(1);
    } else {
        counter!("cname_guard_certificate_failures_total").increment(1);
    }
}

/// Management API middleware: requests by route template (axum's
/// `MatchedPath`, never the raw path) and status.
pub async fn admin(
    route: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    // Route templates are few and fixed; an unmatched path is one word.
    let route = route.map(|r| r.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_str().to_owned();
    counter!("cname_guard_admin_requests_total", "route" => route.clone(), "status" => status).increment(1);
    histogram!("cname_guard_admin_request_duration_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Services built in one test process share the recorder: a second
    /// install is the same handle, not a panic.
    #[test]
    fn installed_once_and_rendered() {
        let first = install().expect("recorder") as *const PrometheusHandle;
        let second = install().expect("recorder") as *const PrometheusHandle;
        assert_eq!(first, second);
        lookup(Lookup::NotFound, Duration::from_millis(3));
        dns_budget_refused(true);
        let text = render();
        assert!(text.contains("# TYPE cname_guard_lookups_total counter"), "{text}");
        assert!(text.contains(r#"cname_guard_lookups_total{result="not_found"} "#), "{text}");
        assert!(text.contains(r#"cname_guard_dns_budget_refusals_total{kind="zone"} "#), "{text}");
        assert!(text.contains(r#"cname_guard_lookup_duration_seconds_bucket{le="0.005"} "#), "{text}");
    }
}
