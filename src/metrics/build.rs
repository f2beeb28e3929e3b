//! `ferry_build_info{version,commit,rustc} 1`: which build is running, joinable onto any
//! other series by instance (`* on(instance) group_left(version) ferry_build_info`).

use prometheus::{IntGaugeVec, Opts, Registry};

/// Registers the gauge with its one series set to 1.
pub(super) fn register(registry: &Registry) {
    let info = IntGaugeVec::new(
        Opts::new(
            "ferry_build_info",
            "Always 1; the labels say which build runs: version, git commit and rustc release.",
        ),
        &["version", "commit", "rustc"],
    )
    .expect("valid metric");
    info.with_label_values(&[
        crate::build::VERSION,
        crate::build::COMMIT,
        crate::build::rustc_release(),
    ])
    .set(1);
    registry
        .register(Box::new(info))
        .expect("metric names are unique");
}
