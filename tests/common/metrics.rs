//! `Metrics`: a Prometheus text-format scraper and parser, and polling for counter deltas.

use super::*;

#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    pub raw: String,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key = s[k0..i].trim().to_string();
        i += 2; // ="
        let mut val = String::new();
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' && i + 1 < b.len() {
                i += 1;
                val.push(match b[i] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                val.push(b[i] as char);
            }
            i += 1;
        }
        i += 1;
        out.insert(key, val);
    }
    out
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rfind('}') {
                Some(close) => (&line[..=close], line[close + 1..].trim()),
                None => {
                    let mut it = line.splitn(2, ' ');
                    (it.next().unwrap(), it.next().unwrap_or("").trim())
                }
            };
            let value = value.split_whitespace().next().unwrap_or("");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad metric value in {line:?}")),
            };
            let (name, labels) = match series.find('{') {
                Some(open) => (
                    &series[..open],
                    parse_labels(&series[open + 1..series.len() - 1]),
                ),
                None => (series, BTreeMap::new()),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Metrics {
            samples,
            raw: text.to_string(),
        }
    }

    pub fn scrape(admin: SocketAddr) -> Metrics {
        let mut c = Conn::connect(admin);
        c.send(&req("GET", "/metrics", &[("Connection", "close")]));
        let r = c.read_response("GET");
        assert_eq!(r.status, 200, "GET /metrics status");
        Metrics::parse(&r.text())
    }

    /// Sum over all series named `name` whose labels include every pair in `filter` (0 if none).
    pub fn get(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

/// Polls /metrics until `name{filter}` minus `base` reaches at least `delta`, then returns the
/// actual delta (which the caller asserts exactly). Returns the last delta seen on timeout.
pub fn wait_delta(
    server: &Server,
    base: &Metrics,
    name: &str,
    filter: &[(&str, &str)],
    delta: f64,
) -> f64 {
    let b = base.get(name, filter);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = server.metrics().get(name, filter) - b;
        if d >= delta || Instant::now() >= deadline {
            return d;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Label pairs a metric series must carry.
pub type Labels<'a> = &'a [(&'a str, &'a str)];
/// An expected delta: metric name, labels, value.
pub type Want<'a> = (&'a str, Labels<'a>, f64);

/// Asserts every `(name, filter, want)` delta between two scrapes, reporting all mismatches
/// at once.
pub fn expect_deltas(base: &Metrics, now: &Metrics, want: &[Want<'_>], ctx: &str) {
    let bad: Vec<String> = want
        .iter()
        .filter_map(|(name, filter, want)| {
            let d = now.get(name, filter) - base.get(name, filter);
            (d != *want).then(|| format!("  {name}{filter:?}: delta {d}, want {want}"))
        })
        .collect();
    assert!(bad.is_empty(), "{ctx}: metric deltas:\n{}", bad.join("\n"));
}
