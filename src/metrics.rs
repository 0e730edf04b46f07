//! The process's metrics, served by `/metrics` in the Prometheus text format (0.0.4) through
//! `prometheus-client`: the counters the daemon, the dispatcher and the portal bump, three
//! latency histograms (engine pass, one message send, one webhook), and the figures read at
//! scrape time (tickets and outbox rows by state, connections), handed in as a [`Scrape`].
//!
//! This module sits below every edge module: it imports nothing of the crate, and the daemon,
//! delivery and http import it. Recording is a few atomic adds (counters, gauges) or one short
//! uncontended lock (a histogram observation); label values are static strings, so no
//! observation allocates.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::Channel;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric name starts with this and an underscore.
const PREFIX: &str = "messo";

/// The webhook routes a request is counted under; anything else is `other`.
const ROUTES: [&str; 4] = ["sms", "voice", "dlr", "mail"];

/// Engine passes: 1 ms to about 16 s.
fn pass_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// One message's send, every attempt of it: 1 ms to about 33 s (a provider's timeout).
fn send_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// One webhook request: 0.5 ms to about 4 s.
fn webhook_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The results a digital domicile look-up is counted under.
pub const DOMICILE_RESULTS: [&str; 3] = ["found", "none", "failed"];

/// The kinds of personal data the retention pass and `messo privacy erase` count rows under.
pub const RETENTION_KINDS: [&str; 6] = [
    "message_bodies",
    "closed_ticket_contacts",
    "inbound",
    "attachments",
    "audit",
    "domiciles",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of one process (the daemon makes one and shares it).
pub struct Metrics {
    /// Engine passes run.
    pub cycles: Counter,
    /// Duration of the last engine pass, in milliseconds.
    pub last_cycle_ms: Gauge,
    /// When the last engine pass looked at the clock (Unix seconds; 0: none yet).
    pub last_cycle_at: Gauge,
    pub owed_total: Counter,
    pub delivered_total: Counter,
    pub failed_total: Counter,
    pub dead_total: Counter,
    pub uncertain_total: Counter,
    /// Messages sent again while an earlier attempt may have gone through.
    pub resent_total: Counter,
    pub fallback_total: Counter,
    pub attempts_total: Counter,
    pub inbox_rows_total: Counter,
    /// Inbound records acted on, replies that became an integrazione, replies matched to no
    /// ticket, SMS opt-outs, delivery receipts applied.
    pub inbound_total: Counter,
    pub inbound_integrations_total: Counter,
    pub inbound_unmatched_total: Counter,
    pub inbound_opt_outs_total: Counter,
    pub inbound_receipts_total: Counter,
    /// `STATO`/`AIUTO` SMS answered, and those over the sender's daily allowance (not answered).
    pub sms_answers_total: Counter,
    pub sms_answers_limited_total: Counter,
    /// IO messages read back, and unread notices that matter copied to the written route.
    pub io_readbacks_total: Counter,
    pub io_unread_copies_total: Counter,
    /// Status pages and portal feeds shown, and refused (bad, expired or revoked links, limits).
    pub portal_views_total: Counter,
    pub portal_refused_total: Counter,
    /// Portal tokens that asked about more distinct citizens in an hour than allowed.
    pub portal_enumeration_alarms_total: Counter,
    /// Digital domicile look-ups in INAD, by result (`found`, `none`, `failed`).
    domicile_lookups: Family<ResultLabels, Counter>,
    /// Rows whose personal data the retention pass removed, by kind ([`RETENTION_KINDS`]).
    retention_rows: Family<KindLabels, Counter>,
    pass_seconds: Histogram,
    send_seconds: HistogramFamily<SendLabels>,
    webhook_seconds: HistogramFamily<WebhookLabels>,
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("cycles", &self.cycles.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its name.
    pub fn new() -> Metrics {
        let m = Metrics {
            cycles: Counter::default(),
            last_cycle_ms: Gauge::default(),
            last_cycle_at: Gauge::default(),
            owed_total: Counter::default(),
            delivered_total: Counter::default(),
            failed_total: Counter::default(),
            dead_total: Counter::default(),
            uncertain_total: Counter::default(),
            resent_total: Counter::default(),
            fallback_total: Counter::default(),
            attempts_total: Counter::default(),
            inbox_rows_total: Counter::default(),
            inbound_total: Counter::default(),
            inbound_integrations_total: Counter::default(),
            inbound_unmatched_total: Counter::default(),
            inbound_opt_outs_total: Counter::default(),
            inbound_receipts_total: Counter::default(),
            sms_answers_total: Counter::default(),
            sms_answers_limited_total: Counter::default(),
            io_readbacks_total: Counter::default(),
            io_unread_copies_total: Counter::default(),
            portal_views_total: Counter::default(),
            portal_refused_total: Counter::default(),
            portal_enumeration_alarms_total: Counter::default(),
            domicile_lookups: Family::default(),
            retention_rows: Family::default(),
            pass_seconds: pass_histogram(),
            send_seconds: Family::new_with_constructor(send_histogram as fn() -> Histogram),
            webhook_seconds: Family::new_with_constructor(webhook_histogram as fn() -> Histogram),
            registry: Registry::with_prefix(PREFIX),
        };
        m.registered()
    }

    fn registered(mut self) -> Metrics {
        // Every channel's series exists from the start, at zero; a webhook's appears with the
        // first request of its route and status.
        for channel in Channel::ALL {
            let _ = self.send_seconds.get_or_create(&SendLabels {
                channel: channel.as_str(),
            });
        }
        self.register_engine();
        // Counters are named without `_total`: the encoder adds it.
        for (name, help, c) in self.counters() {
            self.registry.register(name, help, c);
        }
        for result in DOMICILE_RESULTS {
            let _ = self
                .domicile_lookups
                .get_or_create(&ResultLabels { result });
        }
        self.registry.register(
            "domicile_lookups",
            "Digital domicile look-ups in INAD, by result (found, none, failed)",
            self.domicile_lookups.clone(),
        );
        for kind in RETENTION_KINDS {
            let _ = self.retention_rows.get_or_create(&KindLabels { kind });
        }
        self.registry.register(
            "retention_rows",
            "Rows whose personal data the retention pass removed or pseudonymised, by kind",
            self.retention_rows.clone(),
        );
        self.register_durations();
        self
    }

    /// Counts `n` rows the retention pass cleared under `kind` (one of [`RETENTION_KINDS`];
    /// anything else is not counted).
    pub fn count_retention(&self, kind: &str, n: u64) {
        if let Some(kind) = RETENTION_KINDS.into_iter().find(|k| *k == kind) {
            self.retention_rows
                .get_or_create(&KindLabels { kind })
                .inc_by(n);
        }
    }

    /// The rows counted so far under `kind`.
    pub fn retention_rows(&self, kind: &'static str) -> u64 {
        self.retention_rows
            .get_or_create(&KindLabels { kind })
            .get()
    }

    /// Counts `n` digital domicile look-ups that ended in `result` (one of
    /// [`DOMICILE_RESULTS`]; anything else counts as `failed`).
    pub fn count_domicile_lookups(&self, result: &str, n: u64) {
        let result = DOMICILE_RESULTS
            .into_iter()
            .find(|r| *r == result)
            .unwrap_or("failed");
        self.domicile_lookups
            .get_or_create(&ResultLabels { result })
            .inc_by(n);
    }

    /// The digital domicile look-ups counted so far under `result`.
    pub fn domicile_lookups(&self, result: &'static str) -> u64 {
        self.domicile_lookups
            .get_or_create(&ResultLabels { result })
            .get()
    }

    /// The engine pass: the last one's duration, how many ran, each one's duration.
    fn register_engine(&mut self) {
        let r = &mut self.registry;
        r.register_with_unit(
            "engine_cycle",
            "Duration of the last engine pass",
            Unit::Other("milliseconds".to_owned()),
            self.last_cycle_ms.clone(),
        );
        r.register("engine_cycles", "Engine passes run", self.cycles.clone());
        r.register_with_unit(
            "engine_pass_duration",
            "Duration of each engine pass (inbound records, direct writes, engine)",
            Unit::Seconds,
            self.pass_seconds.clone(),
        );
    }

    /// The counters of messages, inbound records, the portal and the CRM's direct writes, each
    /// with its name and help, in the order they are shown.
    fn counters(&self) -> [(&'static str, &'static str, Counter); 21] {
        [
            ("notices_owed", "Messages the engine owed", &self.owed_total),
            (
                "notices_delivered",
                "Messages delivered",
                &self.delivered_total,
            ),
            (
                "notices_failed",
                "Messages whose send failed (retried, dead or held)",
                &self.failed_total,
            ),
            ("notices_dead", "Messages given up on", &self.dead_total),
            (
                "notices_uncertain",
                "Messages whose outcome is unknown, held for the office",
                &self.uncertain_total,
            ),
            (
                "resent",
                "Messages sent again while an earlier attempt may have gone through",
                &self.resent_total,
            ),
            (
                "fallback",
                "Replacements owed on another channel",
                &self.fallback_total,
            ),
            ("attempts", "Provider attempts made", &self.attempts_total),
            ("inbound", "Inbound records acted on", &self.inbound_total),
            (
                "inbound_integrations",
                "Replies that became an integrazione",
                &self.inbound_integrations_total,
            ),
            (
                "inbound_unmatched",
                "Replies matched to no ticket",
                &self.inbound_unmatched_total,
            ),
            (
                "inbound_opt_outs",
                "SMS opt-outs taken",
                &self.inbound_opt_outs_total,
            ),
            (
                "inbound_receipts",
                "Delivery receipts applied",
                &self.inbound_receipts_total,
            ),
            (
                "sms_answers",
                "STATO/AIUTO SMS answered",
                &self.sms_answers_total,
            ),
            (
                "sms_answers_limited",
                "STATO/AIUTO SMS over the sender's daily allowance, not answered",
                &self.sms_answers_limited_total,
            ),
            (
                "io_readbacks",
                "IO messages read back",
                &self.io_readbacks_total,
            ),
            (
                "io_unread_copies",
                "IO notices not read in time, copied to the written route",
                &self.io_unread_copies_total,
            ),
            (
                "portal_views",
                "Status pages and portal feeds shown",
                &self.portal_views_total,
            ),
            (
                "portal_refused",
                "Status pages and portal feeds refused",
                &self.portal_refused_total,
            ),
            (
                "portal_enumeration_alarms",
                "Portal tokens that asked about too many citizens within an hour",
                &self.portal_enumeration_alarms_total,
            ),
            (
                "crm_inbox_rows",
                "Direct writes of the CRM taken",
                &self.inbox_rows_total,
            ),
        ]
        .map(|(name, help, c)| (name, help, c.clone()))
    }

    /// The latency histograms of a message's send and of a webhook request.
    fn register_durations(&mut self) {
        let r = &mut self.registry;
        r.register_with_unit(
            "dispatch_send_duration",
            "Duration of one message's send through its channel, every provider attempt included",
            Unit::Seconds,
            self.send_seconds.clone(),
        );
        r.register_with_unit(
            "webhook_duration",
            "Duration of one webhook request, from routing to the answer",
            Unit::Seconds,
            self.webhook_seconds.clone(),
        );
    }

    /// Records one engine pass that took `took`.
    pub fn observe_pass(&self, took: Duration) {
        self.pass_seconds.observe(took.as_secs_f64());
    }

    /// Records one message's send on `channel` that took `took`.
    pub fn observe_send(&self, channel: Channel, took: Duration) {
        self.send_seconds
            .get_or_create(&SendLabels {
                channel: channel.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one webhook request on `route` (`sms`, `voice`, `dlr`, `mail`) answered with
    /// `status` after `took`.
    pub fn observe_webhook(&self, route: &str, status: u16, took: Duration) {
        let route = ROUTES.into_iter().find(|r| *r == route).unwrap_or("other");
        self.webhook_seconds
            .get_or_create(&WebhookLabels { route, status })
            .observe(took.as_secs_f64());
    }

    /// Every metric as Prometheus text, with the figures of `scrape`.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String does not fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &scrape.registry(self.last_cycle_at.get()));
        out
    }
}

/// Figures read when `/metrics` is asked for; a store figure that could not be read is left out.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The time now (Unix seconds).
    pub now: i64,
    /// Password and token hashes computed for requests.
    pub argon2_runs: u64,
    /// HTTP connections open now, accepted, evicted at the cap, and timed out.
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_evicted: u64,
    pub connections_timed_out: u64,
    /// Open tickets by SLA state.
    pub tickets: Option<Vec<(String, i64)>>,
    /// Outbox rows by state.
    pub outbox: Option<Vec<(String, i64)>>,
    /// Breach notices owed so far.
    pub breaches: Option<i64>,
}

impl Scrape {
    fn registry(&self, last_cycle_at: i64) -> Registry {
        let mut r = Registry::with_prefix(PREFIX);
        let lag = if last_cycle_at == 0 {
            0
        } else {
            self.now - last_cycle_at
        };
        r.register_with_unit(
            "poll_lag",
            "Seconds since the last engine pass",
            Unit::Seconds,
            ConstGauge::new(lag),
        );
        r.register(
            "argon2_runs",
            "Password and token hashes computed for requests",
            ConstCounter::new(self.argon2_runs),
        );
        r.register(
            "http_connections",
            "HTTP connections open now",
            ConstGauge::new(clamp(self.connections_open)),
        );
        for (name, help, v) in [
            (
                "http_connections",
                "HTTP connections accepted",
                self.connections_accepted,
            ),
            (
                "http_connections_evicted",
                "Idle HTTP connections closed to make room at the cap",
                self.connections_evicted,
            ),
            (
                "http_connections_timed_out",
                "HTTP connections closed for a late head or no progress",
                self.connections_timed_out,
            ),
        ] {
            r.register(name, help, ConstCounter::new(v));
        }
        for (name, help, rows) in [
            ("tickets", "Open tickets by SLA state", &self.tickets),
            ("outbox", "Outbox rows by state", &self.outbox),
        ] {
            if let Some(rows) = rows {
                let family = Family::<StateLabels, Gauge>::default();
                for (state, n) in rows {
                    family
                        .get_or_create(&StateLabels {
                            state: state.clone(),
                        })
                        .set(*n);
                }
                r.register(name, help, family);
            }
        }
        if let Some(n) = self.breaches {
            r.register(
                "breaches",
                "Breach notices owed so far",
                ConstCounter::new(n.max(0) as u64),
            );
        }
        r
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn domicile_look_ups_are_counted_by_result() {
        let m = Metrics::new();
        let text = m.render(&Scrape::default());
        assert!(
            text.contains("# TYPE messo_domicile_lookups_total counter\n"),
            "{text}"
        );
        for result in DOMICILE_RESULTS {
            let series = format!("messo_domicile_lookups_total{{result=\"{result}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{text}");
        }
        m.count_domicile_lookups("found", 2);
        m.count_domicile_lookups("no such result", 1);
        let text = m.render(&Scrape::default());
        assert_eq!(
            value(&text, "messo_domicile_lookups_total{result=\"found\"}"),
            Some(2.0)
        );
        assert_eq!(m.domicile_lookups("failed"), 1);
    }

    #[test]
    fn retention_rows_are_counted_by_kind() {
        let m = Metrics::new();
        let text = m.render(&Scrape::default());
        for kind in RETENTION_KINDS {
            let series = format!("messo_retention_rows_total{{kind=\"{kind}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{text}");
        }
        m.count_retention("inbound", 3);
        m.count_retention("no such kind", 1);
        let text = m.render(&Scrape::default());
        assert_eq!(
            value(&text, "messo_retention_rows_total{kind=\"inbound\"}"),
            Some(3.0)
        );
        assert_eq!(m.retention_rows("audit"), 0);
    }

    #[test]
    fn every_name_of_the_old_exposition_is_served_with_its_type() {
        let m = Metrics::new();
        m.owed_total.inc_by(3);
        m.portal_views_total.inc();
        m.last_cycle_ms.set(42);
        m.last_cycle_at.set(1_000);
        let text = m.render(&Scrape {
            now: 1_007,
            argon2_runs: 2,
            connections_open: 5,
            connections_accepted: 9,
            tickets: Some(vec![("running".into(), 4), ("breached".into(), 1)]),
            outbox: Some(vec![("queued".into(), 6)]),
            breaches: Some(1),
            ..Scrape::default()
        });
        for (name, kind) in [
            ("messo_poll_lag_seconds", "gauge"),
            ("messo_engine_cycle_milliseconds", "gauge"),
            ("messo_engine_cycles_total", "counter"),
            ("messo_notices_owed_total", "counter"),
            ("messo_notices_delivered_total", "counter"),
            ("messo_notices_failed_total", "counter"),
            ("messo_notices_dead_total", "counter"),
            ("messo_notices_uncertain_total", "counter"),
            ("messo_resent_total", "counter"),
            ("messo_fallback_total", "counter"),
            ("messo_attempts_total", "counter"),
            ("messo_inbound_total", "counter"),
            ("messo_inbound_integrations_total", "counter"),
            ("messo_inbound_unmatched_total", "counter"),
            ("messo_inbound_opt_outs_total", "counter"),
            ("messo_inbound_receipts_total", "counter"),
            ("messo_sms_answers_total", "counter"),
            ("messo_sms_answers_limited_total", "counter"),
            ("messo_io_readbacks_total", "counter"),
            ("messo_io_unread_copies_total", "counter"),
            ("messo_portal_views_total", "counter"),
            ("messo_portal_refused_total", "counter"),
            ("messo_portal_enumeration_alarms_total", "counter"),
            ("messo_argon2_runs_total", "counter"),
            ("messo_http_connections", "gauge"),
            ("messo_http_connections_total", "counter"),
            ("messo_http_connections_evicted_total", "counter"),
            ("messo_http_connections_timed_out_total", "counter"),
            ("messo_crm_inbox_rows_total", "counter"),
            ("messo_tickets", "gauge"),
            ("messo_outbox", "gauge"),
            ("messo_breaches_total", "counter"),
            ("messo_engine_pass_duration_seconds", "histogram"),
            ("messo_dispatch_send_duration_seconds", "histogram"),
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} {kind}\n")).count(),
                1,
                "{name} {kind}\n{text}"
            );
        }
        assert_eq!(value(&text, "messo_poll_lag_seconds"), Some(7.0));
        assert_eq!(value(&text, "messo_engine_cycle_milliseconds"), Some(42.0));
        assert_eq!(value(&text, "messo_notices_owed_total"), Some(3.0));
        assert_eq!(value(&text, "messo_portal_views_total"), Some(1.0));
        assert_eq!(value(&text, "messo_argon2_runs_total"), Some(2.0));
        assert_eq!(value(&text, "messo_http_connections"), Some(5.0));
        assert_eq!(value(&text, "messo_http_connections_total"), Some(9.0));
        assert_eq!(value(&text, "messo_tickets{state=\"running\"}"), Some(4.0));
        assert_eq!(value(&text, "messo_tickets{state=\"breached\"}"), Some(1.0));
        assert_eq!(value(&text, "messo_outbox{state=\"queued\"}"), Some(6.0));
        assert_eq!(value(&text, "messo_breaches_total"), Some(1.0));
        for channel in Channel::ALL {
            assert_eq!(
                value(
                    &text,
                    &format!("messo_dispatch_send_duration_seconds_count{{channel=\"{channel}\"}}")
                ),
                Some(0.0),
                "{channel}"
            );
        }
        assert!(!text.contains("messo_webhook_duration_seconds"), "{text}");
    }

    #[test]
    fn no_pass_yet_is_no_lag_and_a_missing_store_figure_is_left_out() {
        let text = Metrics::new().render(&Scrape {
            now: 1_000_000,
            ..Scrape::default()
        });
        assert_eq!(value(&text, "messo_poll_lag_seconds"), Some(0.0));
        assert!(!text.contains("messo_tickets"), "{text}");
        assert!(!text.contains("messo_breaches"), "{text}");
    }

    #[test]
    fn histograms_count_what_they_observe_under_bounded_labels() {
        let m = Metrics::new();
        m.observe_pass(Duration::from_millis(3));
        m.observe_pass(Duration::from_millis(30));
        m.observe_send(Channel::Email, Duration::from_millis(2));
        m.observe_send(Channel::Sms, Duration::from_millis(200));
        m.observe_webhook("sms", 200, Duration::from_micros(800));
        m.observe_webhook("../etc", 404, Duration::from_micros(100));
        let text = m.render(&Scrape::default());
        assert_eq!(
            value(&text, "messo_engine_pass_duration_seconds_count"),
            Some(2.0)
        );
        let sum = value(&text, "messo_engine_pass_duration_seconds_sum").expect("sum");
        assert!((sum - 0.033).abs() < 1e-9, "{sum}");
        // 3 ms falls in the 4 ms bucket, 30 ms does not.
        assert_eq!(
            value(
                &text,
                "messo_engine_pass_duration_seconds_bucket{le=\"0.004\"}"
            ),
            Some(1.0)
        );
        for (channel, count) in [("email", 1.0), ("sms", 1.0), ("pec", 0.0)] {
            assert_eq!(
                value(
                    &text,
                    &format!("messo_dispatch_send_duration_seconds_count{{channel=\"{channel}\"}}")
                ),
                Some(count),
                "{channel}\n{text}"
            );
        }
        assert_eq!(
            value(
                &text,
                "messo_webhook_duration_seconds_count{route=\"sms\",status=\"200\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "messo_webhook_duration_seconds_count{route=\"other\",status=\"404\"}"
            ),
            Some(1.0)
        );
        assert!(!text.contains("../etc"));
        assert_eq!(
            text.matches("# TYPE messo_webhook_duration_seconds histogram\n")
                .count(),
            1
        );
    }
}
