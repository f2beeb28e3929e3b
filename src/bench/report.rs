//! What `ferry bench` prints: per method the measured figures (or why it could not run), as a
//! table for people or JSON for machines, and a recommendation for this machine drawn from
//! the figures. Pure: everything here works on numbers already measured.

use serde::Serialize;

use super::methods::{CHUNK, Counters, Method};
use super::transfer::Measured;
use super::units::human_bytes;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// One method's line.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: &'static str,
    /// The calls it makes per chunk.
    pub calls: &'static str,
    /// "ok", "unavailable" (cannot run here; `reason` says why) or "failed".
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Figures>,
}

/// Measured figures of a method that ran.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    pub bytes: u64,
    pub seconds: f64,
    pub throughput_mib_s: f64,
    /// Sender threads' CPU time (their CPU clocks: user + system, exact).
    pub cpu_seconds: f64,
    /// The user-space part of it (tick-sampled by getrusage, so approximate).
    pub cpu_user_seconds: f64,
    pub cpu_s_per_gib: f64,
    pub syscalls: u64,
    pub syscalls_per_mib: f64,
    /// User/kernel mode switches (two per syscall) per CHUNK of file: the classic table's
    /// "context switches" per read/write round.
    pub mode_switches_per_chunk: f64,
    /// Scheduler context switches of the sender threads (voluntary + involuntary).
    pub context_switches: u64,
    pub context_switches_per_mib: f64,
    /// Bytes of file data that passed through the process's memory.
    pub user_space_bytes: u64,
    /// Bytes the CPU copied between user and kernel space.
    pub cpu_copied_bytes: u64,
    /// `cpu_copied_bytes / bytes`: the classic table's "CPU copies".
    pub cpu_copies: f64,
    /// The receivers' CPU time (recv with MSG_TRUNC), for comparison; not in the table.
    pub receiver_cpu_seconds: f64,
}

impl Row {
    pub fn measured(method: Method, measured: &Measured) -> Row {
        let Counters {
            sent,
            syscalls,
            user_bytes,
            cpu_copied,
        } = measured.counters;
        let bytes = sent.max(1) as f64;
        let seconds = measured.elapsed.as_secs_f64().max(1e-9);
        let cpu = measured.usage.cpu.as_secs_f64();
        let switches = measured.usage.voluntary_switches + measured.usage.involuntary_switches;
        Row {
            method: method.name(),
            calls: method.calls(),
            status: "ok",
            reason: None,
            figures: Some(Figures {
                bytes: sent,
                seconds,
                throughput_mib_s: bytes / MIB / seconds,
                cpu_seconds: cpu,
                cpu_user_seconds: measured.usage.user.as_secs_f64(),
                cpu_s_per_gib: cpu / (bytes / GIB),
                syscalls,
                syscalls_per_mib: syscalls as f64 / (bytes / MIB),
                mode_switches_per_chunk: 2.0 * syscalls as f64 / (bytes / CHUNK as f64),
                context_switches: switches,
                context_switches_per_mib: switches as f64 / (bytes / MIB),
                user_space_bytes: user_bytes,
                cpu_copied_bytes: cpu_copied,
                cpu_copies: cpu_copied as f64 / bytes,
                receiver_cpu_seconds: measured.receiver_cpu.as_secs_f64(),
            }),
        }
    }

    pub fn unavailable(method: Method, reason: String) -> Row {
        Row {
            method: method.name(),
            calls: method.calls(),
            status: "unavailable",
            reason: Some(reason),
            figures: None,
        }
    }

    pub fn failed(method: Method, reason: String) -> Row {
        Row {
            status: "failed",
            ..Row::unavailable(method, reason)
        }
    }

    /// Of several measured rounds of one method (non-empty), the one with the median sender
    /// CPU per GiB: the figure a busy, shared machine disturbs least.
    pub fn median(mut rounds: Vec<Row>) -> Row {
        let cpu = |row: &Row| row.figures.map_or(f64::INFINITY, |f| f.cpu_s_per_gib);
        rounds.sort_by(|a, b| cpu(a).total_cmp(&cpu(b)));
        let middle = rounds.len() / 2;
        rounds.swap_remove(middle)
    }

    fn find(rows: &[Row], method: Method) -> Option<(&Row, &Figures)> {
        rows.iter()
            .find(|row| row.method == method.name())
            .and_then(|row| row.figures.as_ref().map(|f| (row, f)))
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ferry_version: &'static str,
    pub file: String,
    pub size: u64,
    pub connections: usize,
    /// Transfers per method; each row is its median round.
    pub rounds: usize,
    pub chunk: usize,
    pub kernel: String,
    pub cpus: usize,
    pub mem_total: Option<u64>,
    /// The kernel's `gcm(aes)` driver (/proc/crypto), which kTLS encrypts with.
    pub kernel_aes_gcm: Option<String>,
    pub rows: Vec<Row>,
    pub recommendation: Vec<String>,
}

impl Report {
    pub fn any_failed(&self) -> bool {
        self.rows.iter().any(|row| row.status == "failed")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        out.push_str(&format!(
            "ferry bench: {} file, {}, {} loopback TCP connection{}, median of {} round{}\n",
            human_bytes(self.size),
            self.file,
            self.connections,
            plural(self.connections),
            self.rounds,
            plural(self.rounds),
        ));
        out.push_str(&format!(
            "Linux {}, {} CPUs, {} per call; sender CPU from its thread CPU clock\n\n",
            self.kernel,
            self.cpus,
            human_bytes(self.chunk as u64),
        ));
        out.push_str(&format!(
            "{:<15} {:>9} {:>10} {:>13} {:>14} {:>11} {:>17} {:>11}\n",
            "method",
            "MiB/s",
            "CPU s/GiB",
            "syscalls/MiB",
            "mode sw/chunk",
            "ctx sw/MiB",
            "user-space bytes",
            "CPU copies"
        ));
        for row in &self.rows {
            match &row.figures {
                Some(f) => out.push_str(&format!(
                    "{:<15} {:>9.1} {:>10.3} {:>13.2} {:>14.1} {:>11.2} {:>17} {:>11.2}\n",
                    row.method,
                    f.throughput_mib_s,
                    f.cpu_s_per_gib,
                    f.syscalls_per_mib,
                    f.mode_switches_per_chunk,
                    f.context_switches_per_mib,
                    human_bytes(f.user_space_bytes),
                    f.cpu_copies,
                )),
                None => out.push_str(&format!(
                    "{:<15} {}: {}\n",
                    row.method,
                    row.status,
                    row.reason.as_deref().unwrap_or("")
                )),
            }
        }
        out.push_str(
            "\nsyscalls: the send loop's own calls. mode sw/chunk: two user/kernel mode switches per\n\
             syscall, per 2 MiB chunk (the classic table's \"context switches\"). ctx sw: the\n\
             scheduler's switches of the sender thread. CPU copies: bytes the CPU copied between\n\
             user and kernel space per byte sent (an O_DIRECT read is DMA into the buffer, not a\n\
             copy). DMA copies (disk to RAM, RAM to NIC) are the same for every method and not\n\
             visible from user space; loopback has no NIC, and the receiver discards with\n\
             recv(MSG_TRUNC).\n\n",
        );
        for line in &self.recommendation {
            out.push_str(&format!("recommendation: {line}\n"));
        }
        out
    }
}

/// What this machine should use, explained by the measured figures.
pub fn recommend(rows: &[Row], mem_total: Option<u64>, aes_gcm: Option<&str>) -> Vec<String> {
    let mut lines = vec![send_path_advice(rows)];
    lines.push(directio_advice(rows, mem_total));
    lines.push(tls_advice(rows, aes_gcm));
    lines
}

/// How much cheaper than sendfile (the default) another path must be before the advice is
/// to switch: on a shared machine the same run repeated moves these figures by 20-40%.
const SWITCH_MARGIN: f64 = 0.25;

/// The path `[io] send_path` should choose, by sender CPU per GiB: sendfile (the default)
/// unless another path is cheaper by more than SWITCH_MARGIN.
fn send_path_advice(rows: &[Row]) -> String {
    let candidates = [Method::Sendfile, Method::Splice, Method::ReadWrite];
    let measured: Vec<(Method, &Figures)> = candidates
        .into_iter()
        .filter_map(|m| Row::find(rows, m).map(|(_, f)| (m, f)))
        .collect();
    let Some(&(best, cheapest)) = measured
        .iter()
        .min_by(|a, b| a.1.cpu_s_per_gib.total_cmp(&b.1.cpu_s_per_gib))
    else {
        return "no send path could be measured here".into();
    };
    let default = measured.iter().find(|(m, _)| *m == Method::Sendfile);
    let (pick, figures) = match default {
        Some(&(_, sendfile))
            if cheapest.cpu_s_per_gib >= (1.0 - SWITCH_MARGIN) * sendfile.cpu_s_per_gib =>
        {
            (Method::Sendfile, sendfile)
        }
        _ => (best, cheapest),
    };
    let others: Vec<String> = measured
        .iter()
        .filter(|(m, _)| *m != pick)
        .map(|(m, f)| format!("{} {:.3}", m.name(), f.cpu_s_per_gib))
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!(" (against {})", others.join(", "))
    };
    let margin = SWITCH_MARGIN * 100.0;
    match pick {
        Method::Sendfile => format!(
            "[io] send_path = \"auto\" (sendfile): {:.3} sender CPU s/GiB here{others}, at {:.0} \
             MiB/s; no path was more than {margin:.0}% cheaper",
            figures.cpu_s_per_gib, figures.throughput_mib_s
        ),
        Method::Splice => format!(
            "[io] send_path = \"splice\": {:.3} sender CPU s/GiB here{others}, more than \
             {margin:.0}% below sendfile, at {:.0} MiB/s",
            figures.cpu_s_per_gib, figures.throughput_mib_s
        ),
        _ => format!(
            "keep [io] send_path = \"auto\" unless a run over the real network agrees: on \
             loopback, read+write used the least sender CPU here, {:.3} s/GiB{others}; \
             loopback is not a NIC (the kernel delivers to the receiver on the sender's CPU), \
             and zero-copy keeps file data out of ferry's memory",
            figures.cpu_s_per_gib
        ),
    }
}

fn directio_advice(rows: &[Row], mem_total: Option<u64>) -> String {
    let Some((_, direct)) = Row::find(rows, Method::DirectWrite) else {
        let why = rows
            .iter()
            .find(|row| row.method == Method::DirectWrite.name())
            .and_then(|row| row.reason.clone())
            .unwrap_or_else(|| "not measured".into());
        return format!("leave [io] directio_threshold off for this file's filesystem: {why}");
    };
    let Some(mem) = mem_total else {
        return format!(
            "O_DIRECT streamed {:.0} MiB/s here; the RAM size is unknown, so no threshold is \
             suggested",
            direct.throughput_mib_s
        );
    };
    // One file of an eighth of RAM already evicts a real share of the hot set; below
    // 64 MiB the disk seek per request costs more than the cache it saves.
    let threshold = (mem / 8).max(64 << 20);
    let threshold = 1u64 << (63 - threshold.leading_zeros());
    let cached = Row::find(rows, Method::Sendfile)
        .map(|(_, f)| {
            format!(
                " (sendfile from the page cache: {:.0} MiB/s)",
                f.throughput_mib_s
            )
        })
        .unwrap_or_default();
    format!(
        "[io] directio_threshold = \"{}\": a file that size is an eighth of this machine's {} \
         of RAM, so streaming it through the page cache would push out much of the hot set; \
         O_DIRECT read it from disk at {:.0} MiB/s with {:.3} CPU s/GiB{cached}",
        config_size(threshold),
        human_bytes(mem),
        direct.throughput_mib_s,
        direct.cpu_s_per_gib,
    )
}

fn tls_advice(rows: &[Row], aes_gcm: Option<&str>) -> String {
    let user = Row::find(rows, Method::TlsBuffered).map(|(_, f)| f);
    let plain = Row::find(rows, Method::Sendfile).map(|(_, f)| f);
    match (Row::find(rows, Method::KtlsSendfile), user) {
        (Some((_, ktls)), Some(user)) if ktls.cpu_s_per_gib <= user.cpu_s_per_gib => format!(
            "[tls] ktls = \"auto\": kTLS sendfile used {:.3} CPU s/GiB against userspace TLS's \
             {:.3} ({:.0} vs {:.0} MiB/s; kernel gcm(aes): {})",
            ktls.cpu_s_per_gib,
            user.cpu_s_per_gib,
            ktls.throughput_mib_s,
            user.throughput_mib_s,
            aes_gcm.unwrap_or("unknown")
        ),
        (Some((_, ktls)), Some(user)) => format!(
            "[tls] ktls = \"off\" until the kernel's AES-GCM is fast: kTLS sendfile used {:.3} \
             CPU s/GiB against userspace TLS's {:.3}; the kernel encrypts with {} (rustls uses \
             its own AES-NI code; `modprobe aesni_intel` gives the kernel the same)",
            ktls.cpu_s_per_gib,
            user.cpu_s_per_gib,
            aes_gcm.unwrap_or("an unknown gcm(aes) driver")
        ),
        (ktls, user) => {
            let why = match ktls {
                Some(_) => "userspace TLS was not measured".to_string(),
                None => rows
                    .iter()
                    .find(|row| row.method == Method::KtlsSendfile.name())
                    .and_then(|row| row.reason.clone())
                    .unwrap_or_else(|| "not measured".into()),
            };
            let cost = match (user, plain) {
                (Some(user), Some(plain)) => format!(
                    ", at {:.3} CPU s/GiB against plain sendfile's {:.3}",
                    user.cpu_s_per_gib, plain.cpu_s_per_gib
                ),
                _ => String::new(),
            };
            format!("TLS bodies will take tls_buffered (rustls) here{cost}: kTLS: {why}")
        }
    }
}

/// A size as the config file writes it (`"2GiB"`, `"256MiB"`): whole units only.
fn config_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::bench::ThreadUsage;
    use std::time::Duration;

    fn measured(sent: u64, syscalls: u64, copied: u64, cpu_ms: u64) -> Measured {
        Measured {
            counters: Counters {
                sent,
                syscalls,
                user_bytes: copied.min(sent),
                cpu_copied: copied,
            },
            elapsed: Duration::from_millis(500),
            usage: ThreadUsage {
                cpu: Duration::from_millis(cpu_ms),
                user: Duration::from_millis(cpu_ms / 2),
                system: Duration::from_millis(cpu_ms / 2),
                voluntary_switches: 3,
                involuntary_switches: 1,
            },
            received: sent,
            receiver_cpu: Duration::from_millis(10),
        }
    }

    #[test]
    fn figures_are_per_mib_and_per_gib() {
        let row = Row::measured(Method::ReadWrite, &measured(1 << 30, 1024, 2 << 30, 800));
        let f = row.figures.unwrap();
        assert_eq!(f.throughput_mib_s, 2048.0);
        assert!((f.cpu_s_per_gib - 0.8).abs() < 1e-9);
        assert_eq!(f.syscalls_per_mib, 1.0);
        // 1024 syscalls over 512 chunks of 2 MiB: 2 per chunk, 4 mode switches.
        assert_eq!(f.mode_switches_per_chunk, 4.0);
        assert_eq!(f.cpu_copies, 2.0);
        assert_eq!(f.context_switches, 4);
    }

    #[test]
    fn recommends_the_cheaper_zero_copy_path_and_a_power_of_two_threshold() {
        let rows = vec![
            Row::measured(Method::ReadWrite, &measured(1 << 30, 1024, 2 << 30, 800)),
            Row::measured(Method::Sendfile, &measured(1 << 30, 512, 0, 200)),
            Row::measured(Method::Splice, &measured(1 << 30, 2048, 0, 300)),
            Row::measured(Method::DirectWrite, &measured(1 << 30, 1024, 1 << 30, 400)),
            Row::unavailable(Method::KtlsSendfile, "no ULP".into()),
        ];
        let lines = recommend(&rows, Some(16 << 30), None);
        assert!(
            lines[0].contains("send_path = \"auto\" (sendfile)"),
            "{lines:?}"
        );
        assert!(
            lines[0]
                .contains("0.200 sender CPU s/GiB here (against splice 0.300, read+write 0.800)"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("directio_threshold = \"2GiB\""),
            "{lines:?}"
        );
        assert!(lines[2].contains("no ULP"), "{lines:?}");
        // A RAM size that is not a power of two rounds down; small machines get 64 MiB.
        let lines = recommend(&rows, Some(3 << 30), None);
        assert!(lines[1].contains("\"256MiB\""), "{lines:?}");
        let lines = recommend(&rows, Some(256 << 20), None);
        assert!(lines[1].contains("\"64MiB\""), "{lines:?}");
    }

    #[test]
    fn another_path_is_advised_only_when_clearly_cheaper_than_sendfile() {
        let rows = |splice_ms| {
            vec![
                Row::measured(Method::ReadWrite, &measured(1 << 30, 1024, 2 << 30, 800)),
                Row::measured(Method::Sendfile, &measured(1 << 30, 512, 0, 200)),
                Row::measured(Method::Splice, &measured(1 << 30, 2048, 0, splice_ms)),
            ]
        };
        // 20% cheaper: within the noise, sendfile stays.
        let lines = recommend(&rows(160), None, None);
        assert!(
            lines[0].starts_with("[io] send_path = \"auto\" (sendfile)"),
            "{lines:?}"
        );
        assert!(lines[0].contains("splice 0.160"), "{lines:?}");
        // 40% cheaper: splice.
        let lines = recommend(&rows(120), None, None);
        assert!(
            lines[0].starts_with("[io] send_path = \"splice\": 0.120"),
            "{lines:?}"
        );
        assert!(lines[0].contains("sendfile 0.200"), "{lines:?}");
    }

    #[test]
    fn a_cheaper_read_write_does_not_turn_into_advice_to_copy() {
        let rows = vec![
            Row::measured(Method::ReadWrite, &measured(1 << 30, 1024, 2 << 30, 150)),
            Row::measured(Method::Sendfile, &measured(1 << 30, 512, 0, 230)),
        ];
        let lines = recommend(&rows, None, None);
        assert!(
            lines[0].starts_with("keep [io] send_path = \"auto\" unless"),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("0.150 s/GiB (against sendfile 0.230)"),
            "{lines:?}"
        );
        assert!(lines[1].contains("not measured"), "{lines:?}");
    }

    #[test]
    fn no_threshold_where_o_direct_is_refused() {
        let rows = vec![Row::unavailable(
            Method::DirectWrite,
            "tmpfs refuses O_DIRECT".into(),
        )];
        let lines = recommend(&rows, Some(16 << 30), None);
        assert!(lines[0].contains("no send path"), "{lines:?}");
        assert!(
            lines[1].contains("off") && lines[1].contains("tmpfs"),
            "{lines:?}"
        );
    }

    #[test]
    fn ktls_is_advised_only_where_it_costs_less() {
        let ktls = |cpu_ms| Row::measured(Method::KtlsSendfile, &measured(1 << 30, 512, 0, cpu_ms));
        let user = Row::measured(Method::TlsBuffered, &measured(1 << 30, 1536, 2 << 30, 900));
        let lines = recommend(&[ktls(300), user.clone()], None, Some("generic-gcm-aesni"));
        assert!(lines[2].contains("ktls = \"auto\""), "{lines:?}");
        assert!(lines[2].contains("generic-gcm-aesni"), "{lines:?}");
        let lines = recommend(
            &[ktls(2000), user],
            None,
            Some("gcm_base(ctr(aes-generic),ghash-generic)"),
        );
        assert!(lines[2].contains("ktls = \"off\""), "{lines:?}");
        assert!(lines[2].contains("aes-generic"), "{lines:?}");
    }
}
