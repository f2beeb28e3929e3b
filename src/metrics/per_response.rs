//! The series every response touches — `ferry_responses_total{path,source,code}`,
//! `ferry_body_bytes_total{path}`, `ferry_zero_copy_bytes_total{path}` and
//! `ferry_request_duration_seconds{source}` — counted per thread and summed when scraped.
//!
//! Each thread counts into a shard of its own (cache-line aligned), so two workers never
//! write the same cache line: one shared atomic per series would pass its line between the
//! cores on every response, which cost more than the rest of the counting. A scrape reads
//! every shard; the totals are exact (no flushing, nothing held back), as each count is an
//! atomic add to a shard that only its thread (or a thread that drew the same shard, when
//! there are more threads than shards) writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto;

use super::labels::{SendPath, Source, Tally};

/// Request durations span sub-millisecond cached 4 KiB hits to multi-second GiB downloads, so
/// the buckets run from 100 µs to 60 s, roughly ×2.5 apart.
pub(super) const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// The position of `code_class(status)` in `CODES`.
pub(super) fn code_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

pub(super) const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// More than the worker threads of any machine ferry runs on serves from; threads beyond
/// this share shards (still correct, only no longer apart).
const SHARDS: usize = 16;
const PATHS: usize = SendPath::ALL.len();
const SOURCES: usize = Source::ALL.len();
const RESPONSE_SERIES: usize = PATHS * SOURCES * CODES.len();
/// The duration buckets and the last, `+Inf`.
const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// One thread's counts. Bucket counts are per bucket (not cumulative); the sum is in
/// nanoseconds, so that it is an integer add too.
#[repr(align(128))]
struct Shard {
    responses: [AtomicU64; RESPONSE_SERIES],
    body_bytes: [AtomicU64; PATHS],
    zero_copy_bytes: [AtomicU64; PATHS],
    duration_buckets: [[AtomicU64; BUCKETS]; SOURCES],
    duration_nanos: [AtomicU64; SOURCES],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            body_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            zero_copy_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            duration_nanos: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The four families' counts, and their descriptions for the registry (a clone counts into
/// the same shards).
#[derive(Clone)]
pub(super) struct PerResponse {
    shards: Arc<[Shard]>,
    descs: [Desc; 4],
}

/// The shard of the calling thread, drawn once per thread in turn.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

fn response_series(path: usize, source: usize, code: usize) -> usize {
    (path * SOURCES + source) * CODES.len() + code
}

impl PerResponse {
    pub(super) fn new() -> PerResponse {
        let desc = |name: &str, help: &str, labels: &[&str]| {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            Desc::new(name.into(), help.into(), labels, Default::default()).expect("valid metric")
        };
        PerResponse {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            descs: [
                desc(
                    "ferry_responses_total",
                    "Responses sent, by body send path, source and status class.",
                    &["path", "source", "code"],
                ),
                desc(
                    "ferry_body_bytes_total",
                    "Response body bytes written, by send path.",
                    &["path"],
                ),
                desc(
                    "ferry_zero_copy_bytes_total",
                    "Response body bytes that never entered user space, by send path.",
                    &["path"],
                ),
                desc(
                    "ferry_request_duration_seconds",
                    "Time from a complete request head to the last body byte written.",
                    &["source"],
                ),
            ],
        }
    }

    /// Counts one response in the calling thread's shard.
    pub(super) fn record(&self, source: Source, status: u16, tally: &Tally, took: Duration) {
        let shard = &self.shards[shard_index()];
        let series = response_series(tally.path() as usize, source as usize, code_index(status));
        shard.responses[series].fetch_add(1, Relaxed);
        for path in SendPath::ALL {
            let bytes = tally.bytes(path);
            if bytes == 0 {
                continue;
            }
            shard.body_bytes[path as usize].fetch_add(bytes, Relaxed);
            if path.is_zero_copy() {
                let zero_copy = tally.zero_copy(path);
                if zero_copy > 0 {
                    shard.zero_copy_bytes[path as usize].fetch_add(zero_copy, Relaxed);
                }
            }
        }
        let seconds = took.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&upper| seconds <= upper)
            .unwrap_or(DURATION_BUCKETS.len());
        shard.duration_buckets[source as usize][bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        shard.duration_nanos[source as usize].fetch_add(nanos, Relaxed);
    }

    /// The total of one counter over all shards.
    fn total(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| counter(s).load(Relaxed)).sum()
    }
}

/// Label pairs in name order, as the registry's own series have them.
fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    let mut pairs = pairs.to_vec();
    pairs.sort_unstable_by_key(|(name, _)| *name);
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = proto::LabelPair::new();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut counter = proto::Counter::new();
    counter.set_value(value as f64);
    let mut metric = proto::Metric::from_label(labels(pairs));
    metric.set_counter(counter);
    metric
}

fn family(
    desc: &Desc,
    kind: proto::MetricType,
    metrics: Vec<proto::Metric>,
) -> proto::MetricFamily {
    let mut family = proto::MetricFamily::new();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

impl Collector for PerResponse {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut responses = Vec::with_capacity(RESPONSE_SERIES);
        let mut body = Vec::with_capacity(PATHS);
        let mut zero_copy = Vec::new();
        for path in SendPath::ALL {
            for source in Source::ALL {
                for (code, class) in CODES.iter().enumerate() {
                    let series = response_series(path as usize, source as usize, code);
                    let value = self.total(|s| &s.responses[series]);
                    let pairs = [
                        ("path", path.label()),
                        ("source", source.label()),
                        ("code", class),
                    ];
                    responses.push(counter(&pairs, value));
                }
            }
            let pairs = [("path", path.label())];
            body.push(counter(
                &pairs,
                self.total(|s| &s.body_bytes[path as usize]),
            ));
            if path.is_zero_copy() {
                let value = self.total(|s| &s.zero_copy_bytes[path as usize]);
                zero_copy.push(counter(&pairs, value));
            }
        }
        let mut durations = Vec::with_capacity(SOURCES);
        for source in Source::ALL {
            let at = source as usize;
            let mut cumulative = 0;
            let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len());
            for (i, upper) in DURATION_BUCKETS.iter().enumerate() {
                cumulative += self.total(|s| &s.duration_buckets[at][i]);
                let mut bucket = proto::Bucket::new();
                bucket.set_upper_bound(*upper);
                bucket.set_cumulative_count(cumulative);
                buckets.push(bucket);
            }
            let count = cumulative + self.total(|s| &s.duration_buckets[at][BUCKETS - 1]);
            let mut histogram = proto::Histogram::new();
            histogram.set_bucket(buckets);
            histogram.set_sample_count(count);
            histogram.set_sample_sum(self.total(|s| &s.duration_nanos[at]) as f64 / 1e9);
            let mut metric = proto::Metric::from_label(labels(&[("source", source.label())]));
            metric.set_histogram(histogram);
            durations.push(metric);
        }
        let [responses_desc, body_desc, zero_copy_desc, duration_desc] = &self.descs;
        vec![
            family(responses_desc, proto::MetricType::COUNTER, responses),
            family(body_desc, proto::MetricType::COUNTER, body),
            family(zero_copy_desc, proto::MetricType::COUNTER, zero_copy),
            family(duration_desc, proto::MetricType::HISTOGRAM, durations),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(per: &PerResponse) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &per.collect(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counts_from_several_threads_add_up_in_every_family() {
        let per = PerResponse::new();
        let mut tally = Tally::default();
        tally.add(SendPath::Sendfile, 4096);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                let (per, tally) = (&per, &tally);
                scope.spawn(move || {
                    for _ in 0..1000 {
                        per.record(Source::Static, 200, tally, Duration::from_micros(300));
                    }
                });
            }
        });
        per.record(
            Source::Internal,
            404,
            &Tally::default(),
            Duration::from_secs(90),
        );
        let text = text(&per);
        for line in [
            r#"ferry_responses_total{code="2xx",path="sendfile",source="static"} 3000"#,
            r#"ferry_responses_total{code="4xx",path="memory",source="internal"} 1"#,
            r#"ferry_responses_total{code="5xx",path="splice",source="cache"} 0"#,
            r#"ferry_body_bytes_total{path="sendfile"} 12288000"#,
            r#"ferry_zero_copy_bytes_total{path="sendfile"} 12288000"#,
            r#"ferry_request_duration_seconds_bucket{source="static",le="0.00025"} 0"#,
            r#"ferry_request_duration_seconds_bucket{source="static",le="0.0005"} 3000"#,
            r#"ferry_request_duration_seconds_bucket{source="static",le="+Inf"} 3000"#,
            r#"ferry_request_duration_seconds_sum{source="static"} 0.9"#,
            r#"ferry_request_duration_seconds_count{source="static"} 3000"#,
            r#"ferry_request_duration_seconds_bucket{source="internal",le="60"} 0"#,
            r#"ferry_request_duration_seconds_bucket{source="internal",le="+Inf"} 1"#,
            "# TYPE ferry_request_duration_seconds histogram",
            "# TYPE ferry_responses_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
