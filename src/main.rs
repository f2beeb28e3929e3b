//! The `ferry` command: `serve` (the default), `check`, `health`, `reload`, `bench` and
//! `--version`. Exit status
//! 64 (EX_USAGE) for a configuration that does not validate or arguments that do not parse
//! (TLS files or a cache.dir that cannot be used included), 1 for other start-up failures.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use ferry::config::{AccessLog, Config, ConfigErrors};

/// EX_USAGE from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

/// The end of `ferry --help`: what the environment can change.
const ENVIRONMENT_HELP: &str = "\
Environment:
  FERRY__SECTION__KEY=VALUE  Overrides one key of the configuration (file or embedded
                             default): section and key joined by double underscores, e.g.
                             FERRY__SERVER__LISTEN=0.0.0.0:8080 or FERRY__CACHE__MAX_SIZE=2GiB;
                             lists are comma-separated. Unknown keys are errors.
  RUST_LOG=FILTER            Level of the diagnostics on stderr: error, warn, info (the
                             default), debug or trace, also per module, e.g.
                             RUST_LOG=info,ferry::upstream=debug.
  NO_COLOR=1                 No colour on stderr even when it is a terminal.

Documentation: config/ferry.toml documents every key; README.md, \"Using it\".";

#[derive(Parser)]
#[command(
    name = "ferry",
    version = ferry::build::VERSION_TEXT,
    about = "A zero-copy file-offload sidecar and reverse proxy",
    after_help = ENVIRONMENT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML). Without it ferry runs its embedded default.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default when no command is given). SIGHUP reloads the configuration.
    Serve {
        /// Take the listening sockets over from the ferry whose server.upgrade_socket is
        /// PATH; it stops accepting once this one serves, and drains.
        #[arg(long, value_name = "PATH")]
        upgrade_from: Option<PathBuf>,
    },
    /// Tell a running ferry to reload its configuration (SIGHUP to the pid in its pid file;
    /// the result is in its log and in ferry_config_reloads_total).
    Reload {
        /// The pid file [default: server.pid_file of the configuration].
        #[arg(long, value_name = "PATH")]
        pid_file: Option<PathBuf>,
    },
    /// Validate the configuration: every error with its key and its line and column, the
    /// file's values and what they name on disk (roots, certificates, cache and spool
    /// directories) in one run; binds nothing.
    Check,
    /// Ask the ferry running with this configuration whether it is ready: GET /readyz on
    /// its admin listener (admin.listen; an unspecified address is asked on loopback).
    /// Exit 0 on 200, 1 otherwise: a container health check for an image with no shell or
    /// curl.
    Health,
    /// Measure each way of sending a file (read+write, mmap, sendfile, splice, O_DIRECT,
    /// kTLS) over loopback TCP on this machine and disk; reads no configuration.
    Bench {
        /// Size of the generated test file, e.g. "256MiB" [default: 1GiB].
        #[arg(long, value_parser = ferry::bench::parse_size_arg, conflicts_with = "file")]
        size: Option<u64>,
        /// Send this file instead of generating one (it is read once first to warm the cache).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Parallel sender/receiver pairs, each sending its share of the file.
        #[arg(long, default_value = "1", value_parser = ferry::bench::parse_connections)]
        connections: std::num::NonZeroUsize,
        /// Transfers per method, interleaved; each row reports the median one.
        #[arg(long, default_value = "3", value_parser = ferry::bench::parse_rounds)]
        rounds: std::num::NonZeroUsize,
        /// Print JSON instead of the table (and no progress bar).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0; a bad argument is a usage error, like a
        // bad configuration.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(Command::Bench {
        size,
        file,
        connections,
        rounds,
        json,
    }) = cli.command
    {
        if cli.config.is_some() {
            eprintln!("ferry bench: --config is not used: the bench reads no configuration");
            return ExitCode::from(EXIT_CONFIG);
        }
        let options = ferry::bench::Options {
            size: size.unwrap_or(1 << 30),
            file,
            connections,
            rounds,
            progress: !json,
        };
        return bench(&options, json);
    }
    if let Some(Command::Reload {
        pid_file: Some(path),
    }) = &cli.command
    {
        return reload(path);
    }
    if let Some(Command::Check) = cli.command {
        return check(&ferry::config::load::Checked::read(cli.config.as_deref()));
    }
    let config = match load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            report(&errors.0.iter().map(ToString::to_string).collect::<Vec<_>>());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let source = match cli.config {
        Some(path) => ferry::server::ConfigSource::File(path),
        None => ferry::server::ConfigSource::Embedded,
    };
    match cli.command.unwrap_or(Command::Serve { upgrade_from: None }) {
        Command::Health => health(config.admin.listen),
        Command::Serve { upgrade_from } => serve(
            config,
            ferry::server::Options {
                source,
                upgrade_from,
            },
        ),
        Command::Reload { .. } => match &config.server.pid_file {
            Some(path) => reload(path),
            None => {
                eprintln!(
                    "ferry reload: no pid file: give --pid-file PATH, or set server.pid_file in the configuration (--config)"
                );
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Check | Command::Bench { .. } => {
            unreachable!("check and bench run before the configuration loads")
        }
    }
}

/// `ferry bench`: the table (or JSON) on stdout; 64 for arguments that cannot be used, 1
/// when a method failed midway.
fn bench(options: &ferry::bench::Options, json: bool) -> ExitCode {
    let report = match ferry::bench::run(options) {
        Ok(report) => report,
        Err(err @ ferry::bench::BenchError::Usage(_)) => {
            eprintln!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let text = if json {
        report.to_json()
    } else {
        report.to_table()
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end());
    if report.any_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ConfigErrors> {
    match path {
        Some(path) => Config::load(path),
        None => Config::embedded_default(),
    }
}

fn report(errors: &[String]) {
    let mut stderr = std::io::stderr().lock();
    for error in errors {
        let _ = writeln!(stderr, "{error}");
    }
}

/// `ferry check`: every error, the file's with their line and column, then what the file
/// system says about the parts that are valid (see `ferry::check`), all in one run; warnings
/// on stderr too. The last line names what was checked.
fn check(checked: &ferry::config::load::Checked) -> ExitCode {
    let report = ferry::check::run(checked);
    let mut stderr = std::io::stderr().lock();
    for warning in &report.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    if report.errors.is_empty() {
        println!("configuration ok: {}", checked.source);
        return ExitCode::SUCCESS;
    }
    for error in &report.errors {
        let _ = writeln!(stderr, "{error}");
    }
    let count = report.errors.len();
    let noun = if count == 1 { "error" } else { "errors" };
    let _ = writeln!(
        stderr,
        "configuration invalid: {}: {count} {noun}",
        checked.source
    );
    ExitCode::from(EXIT_CONFIG)
}

/// `ferry health`: one GET /readyz to the admin listener at `admin`, every step bounded.
fn health(admin: std::net::SocketAddr) -> ExitCode {
    use std::io::Read;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::time::Duration;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let ip = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, admin.port());
    let status = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        write!(
            stream,
            "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = Vec::new();
        stream.take(256).read_to_end(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    })();
    match status {
        Ok(line) if line.starts_with("HTTP/1.1 200 ") => {
            println!("ready: http://{addr}/readyz: {line}");
            ExitCode::SUCCESS
        }
        Ok(line) => {
            eprintln!("not ready: http://{addr}/readyz: {line:?}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("not ready: http://{addr}/readyz: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `ferry reload`: SIGHUP to the pid in `pid_file` (nginx's `nginx -s reload`).
fn reload(pid_file: &std::path::Path) -> ExitCode {
    let pid = match ferry::server::pid_file::read(pid_file) {
        Ok(pid) => pid,
        Err(err) => {
            eprintln!("ferry reload: {}: {err}", pid_file.display());
            return ExitCode::FAILURE;
        }
    };
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let Some(target) = target else {
        eprintln!("ferry reload: {}: not a pid: {pid}", pid_file.display());
        return ExitCode::FAILURE;
    };
    match rustix::process::kill_process(target, rustix::process::Signal::HUP) {
        Ok(()) => {
            println!("sent SIGHUP to ferry (pid {pid})");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "ferry reload: pid {pid} (from {}): {}",
                pid_file.display(),
                std::io::Error::from(err)
            );
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config, options: ferry::server::Options) -> ExitCode {
    init_tracing(config.server.access_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The listeners go to stderr with the other diagnostics: stdout carries the access log
    // alone, so a log shipper reading it sees one access-log line per response and nothing else.
    let result = runtime.block_on(ferry::server::run(config, options, |bound| {
        let mut stderr = std::io::stderr().lock();
        for addr in &bound.http {
            let _ = writeln!(stderr, "listening http {addr}");
        }
        for addr in &bound.https {
            let _ = writeln!(stderr, "listening https {addr}");
        }
        let _ = writeln!(stderr, "listening admin {}", bound.admin);
        let _ = stderr.flush();
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ferry::server::StartError::Locations(errors)) => {
            report(&errors);
            ExitCode::from(EXIT_CONFIG)
        }
        Err(ferry::server::StartError::Tls(err @ ferry::tls::TlsError::Config(_))) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_CONFIG)
        }
        // cache.dir that cannot be created or opened is the configuration's fault, like a TLS
        // certificate path that does not exist.
        Err(err @ ferry::server::StartError::Cache(_)) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(err) => {
            eprintln!("ferry: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Diagnostics go to stderr (level from RUST_LOG, default info), coloured only when stderr is
/// a terminal and NO_COLOR is not set; the access log goes to stdout, never coloured, and
/// nothing else does.
fn init_tracing(access_log: AccessLog) {
    ferry::access::set_enabled(access_log != AccessLog::Off);
    // https://no-color.org: a NO_COLOR that is set and not empty turns colour off.
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colour = std::io::stderr().is_terminal() && !no_colour;
    // Each layer has one filter that knows its levels and targets up front (an EnvFilter, a
    // Targets), so tracing decides once per callsite: spans and events no layer wants are
    // never built. (A closure filter, or two filters stacked on one layer, leave every
    // callsite at "sometimes": then each disabled debug span of every connection, hyper's
    // trace spans included, is still created, entered and exited on every poll.)
    let access_off = format!("{}=off", ferry::access::TARGET)
        .parse()
        .expect("a valid directive");
    let diagnostics_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(access_off);
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_filter(diagnostics_filter);
    let only_access = || Targets::new().with_target(ferry::access::TARGET, Level::INFO);
    let access = match access_log {
        AccessLog::Off => None,
        AccessLog::Text => Some(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .with_ansi(false)
                .with_filter(only_access())
                .boxed(),
        ),
        AccessLog::Json => Some(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_target(false)
                .with_current_span(false)
                .with_span_list(false)
                .with_ansi(false)
                .with_writer(std::io::stdout)
                .with_filter(only_access())
                .boxed(),
        ),
    };
    tracing_subscriber::registry()
        .with(diagnostics)
        .with(access)
        .init();
}
