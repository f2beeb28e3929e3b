//! The spool's families: bytes put into spool files by direction, files open and bytes held
//! now, and bodies that were not spooled and why.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Which body a spool file holds (`direction` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolDirection {
    /// A request body, read whole before the app is contacted.
    Request,
    /// The rest of a response body the client reads slower than the app wrote it.
    Response,
}

impl SpoolDirection {
    pub const ALL: [SpoolDirection; 2] = [SpoolDirection::Request, SpoolDirection::Response];

    pub fn label(self) -> &'static str {
        match self {
            SpoolDirection::Request => "request",
            SpoolDirection::Response => "response",
        }
    }
}

/// Why a body that could have been spooled was not (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolSkip {
    /// Larger than `spool.max_file_size`.
    FileSize,
    /// It would take the spool past `spool.max_size`.
    TotalSize,
    /// The file could not be created or written.
    Error,
}

impl SpoolSkip {
    pub const ALL: [SpoolSkip; 3] = [SpoolSkip::FileSize, SpoolSkip::TotalSize, SpoolSkip::Error];

    pub fn label(self) -> &'static str {
        match self {
            SpoolSkip::FileSize => "file_size",
            SpoolSkip::TotalSize => "total_size",
            SpoolSkip::Error => "error",
        }
    }
}

/// `ferry_spool_*`.
#[derive(Clone)]
pub struct SpoolMetrics {
    bytes: Vec<IntCounter>,
    skipped: Vec<IntCounter>,
    /// `ferry_spool_files_open`: spool files in use now.
    pub files_open: IntGauge,
    /// `ferry_spool_used_bytes`: bytes the spool files in use hold (or have reserved).
    pub used_bytes: IntGauge,
}

impl SpoolMetrics {
    pub(super) fn new(registry: &Registry) -> SpoolMetrics {
        let bytes = IntCounterVec::new(
            Opts::new(
                "ferry_spool_bytes_total",
                "Body bytes put into spool files, by direction (request, response).",
            ),
            &["direction"],
        )
        .expect("valid metric");
        let skipped = IntCounterVec::new(
            Opts::new(
                "ferry_spool_skipped_total",
                "Bodies that were to be spooled but were not, by reason (file_size, \
                 total_size, error): a response then goes at the client's pace, holding the \
                 app; a request body is streamed.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let files_open =
            IntGauge::new("ferry_spool_files_open", "Spool files in use.").expect("valid metric");
        let used_bytes = IntGauge::new(
            "ferry_spool_used_bytes",
            "Bytes held (or reserved) by the spool files in use.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(bytes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(skipped.clone()),
            Box::new(files_open.clone()),
            Box::new(used_bytes.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        SpoolMetrics {
            bytes: SpoolDirection::ALL
                .iter()
                .map(|d| bytes.with_label_values(&[d.label()]))
                .collect(),
            skipped: SpoolSkip::ALL
                .iter()
                .map(|r| skipped.with_label_values(&[r.label()]))
                .collect(),
            files_open,
            used_bytes,
        }
    }

    /// Counts `n` bytes put into a spool file.
    pub fn spooled(&self, direction: SpoolDirection, n: u64) {
        self.bytes[direction as usize].inc_by(n);
    }

    /// Counts a body not spooled.
    pub fn skipped(&self, reason: SpoolSkip) {
        self.skipped[reason as usize].inc();
    }
}
