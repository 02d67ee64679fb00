//! awareness-exporter: command line, start-up, signals.

// As in the library (src/lib.rs): no `unwrap`/`expect` outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(unreachable_pub)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::config::{self, ConfigError, Report};
use awareness_exporter::registry;
use awareness_exporter::Shard;
use awareness_exporter::WebConfig;
use awareness_exporter::WAITING_ROOM;
use awareness_exporter::{demo, hardening};

#[derive(Debug, Parser)]
#[command(name = "awareness-exporter", version)]
struct Args {
    /// Path of the TOML configuration file.
    #[arg(
        long = "config.file",
        value_name = "PATH",
        default_value = "awareness-exporter.toml"
    )]
    config_file: PathBuf,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// Allow `POST`/`PUT /-/reload` over HTTP (off by default, as in Prometheus; SIGHUP always
    /// reloads).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Serve metrics from built-in simulated tenants of every platform (no credentials; needs
    /// the default `demo` feature).
    #[arg(long)]
    demo: bool,
    /// Check the configuration as start-up would (web config file and listen address included)
    /// without contacting anything; print every problem and exit 0 (valid) or 1.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Log level: error, warn, info, debug or trace (or target=level directives, comma-separated).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// This replica's shard, from 0 to --total-shards - 1: it polls only the accounts whose
    /// hash of (platform, account) falls on it (as kube-state-metrics shards).
    #[arg(long, value_name = "N", default_value_t = 0)]
    shard: u32,
    /// The number of replicas the accounts are spread over; every replica reads the same config.
    #[arg(long = "total-shards", value_name = "N", default_value_t = 1)]
    total_shards: u32,
    /// The pod name of a StatefulSet replica (e.g. `--pod=$(POD_NAME)` from the downward API):
    /// its ordinal is the shard, overriding --shard.
    #[arg(long, value_name = "NAME")]
    pod: Option<String>,
    /// Take the shard from the hostname's StatefulSet ordinal (a StatefulSet pod's hostname is its
    /// name), overriding --shard.
    #[arg(long = "shard.from-hostname")]
    shard_from_hostname: bool,
    /// Print the registered platforms, one per line, and exit (read by scripts/*.py).
    #[arg(long = "list-platforms", hide = true)]
    list_platforms: bool,
}

/// The command line, its description naming every registered platform.
fn parse_args() -> Args {
    use clap::{CommandFactory, FromArgMatches};
    let titles: Vec<&str> = registry::VENDORS.iter().map(|v| v.title()).collect();
    let command = Args::command().about(format!(
        "Prometheus exporter for security awareness training platforms ({})",
        titles.join(", ")
    ));
    Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Logs to stderr at `--log.level`. An unknown level is refused: tracing would read `warning` as
/// a target name and silently log nothing at all, errors included.
fn init_logging(level: &str, format: &str) -> Result<(), String> {
    use tracing_subscriber::fmt;
    let levels = ["error", "warn", "info", "debug", "trace"];
    // Each comma-separated directive is a level or `target=level`.
    let names = level.split(',').filter_map(|d| d.rsplit('=').next());
    let mut names = names.map(|name| name.trim().to_ascii_lowercase());
    let unknown = names.find(|name| !levels.contains(&name.as_str()));
    let filter = tracing_subscriber::EnvFilter::try_new(level).ok();
    let filter = filter.filter(|_| unknown.is_none()).ok_or_else(|| {
        let hint = match unknown.as_deref() {
            Some("warning") => " (did you mean `warn`?)",
            Some("err" | "fatal" | "critical") => " (did you mean `error`?)",
            Some("information" | "notice") => " (did you mean `info`?)",
            _ => "",
        };
        let levels = levels.join(", ");
        format!("invalid --log.level `{level}`: use one of {levels}{hint}")
    })?;
    // Colour codes only for a person at a terminal, never into files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_ansi(ansi);
    let result = if format == "json" {
        builder.json().with_writer(|| JsonLists).try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Writes JSON log lines to stderr with the fields that hold a list (`failed = ?sections`,
/// which tracing can only record as text) as JSON arrays. tracing writes a whole line at once.
struct JsonLists;

impl std::io::Write for JsonLists {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let out = lists_as_arrays(line);
        std::io::stderr().write_all(out.as_deref().unwrap_or(line))?;
        Ok(line.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The line with every field whose text is a list of strings (`["a", "b"]`) made an array;
/// `None` when it has none.
fn lists_as_arrays(line: &[u8]) -> Option<Vec<u8>> {
    let mut event: serde_json::Value = serde_json::from_slice(line).ok()?;
    let fields = event.get_mut("fields")?.as_object_mut()?;
    let mut changed = false;
    for value in fields.values_mut() {
        let text = value.as_str().filter(|t| t.starts_with('['));
        if let Some(list) = text.and_then(|t| serde_json::from_str::<Vec<String>>(t).ok()) {
            *value = list.into();
            changed = true;
        }
    }
    let mut out = serde_json::to_vec(&event).ok().filter(|_| changed)?;
    out.push(b'\n');
    Some(out)
}

/// This replica's shard from `--shard`/`--total-shards`, or from the StatefulSet ordinal in
/// `--pod` or the hostname. An error names the flag it is about.
fn shard_of(args: &Args) -> Result<Shard, (&'static str, String)> {
    if let Some(pod) = &args.pod {
        return Shard::from_pod_name(pod, args.total_shards).map_err(|e| ("--pod", e));
    }
    if args.shard_from_hostname {
        let uname = rustix::system::uname();
        let host = uname.nodename().to_string_lossy();
        return Shard::from_pod_name(&host, args.total_shards)
            .map_err(|e| ("--shard.from-hostname", e));
    }
    Shard::new(args.shard, args.total_shards).map_err(|e| ("--shard", e))
}

/// What start-up checks beyond the config itself, each problem added to `report` (so
/// `--check-config` and start-up share one path): the listen address, the web config file, the
/// shard flags, and `server.max_connections` against `open_files` (clamped, with a warning).
/// Returns the shard and the connections that fit.
fn check_flags(args: &Args, report: &mut Report, open_files: Option<u64>) -> (Shard, usize) {
    let mut flag = |flag: &str, message| {
        let flag = flag.into();
        report.errors.push(ConfigError::Flag { flag, message });
    };
    let listen = args.listen_address.as_deref();
    if let Some(Err(message)) = listen.map(config::listen_address) {
        flag("--web.listen-address", message);
    }
    let shard = shard_of(args).unwrap_or_else(|(f, message)| {
        flag(f, message);
        Shard::ALL
    });
    let web = report.web_config_file.as_ref();
    if let Some((path, Err(message))) = web.map(|p| (p.display().to_string(), WebConfig::load(p))) {
        report.errors.push(ConfigError::WebConfig { path, message });
    }
    let Some(c) = &report.config else {
        return (shard, 0);
    };
    let vendors = c.poll.max_requests_in_flight;
    let fit =
        hardening::fit_connections(c.server.max_connections, WAITING_ROOM, vendors, open_files);
    report.warnings.extend(fit.1);
    (shard, fit.0)
}

/// `--check-config`: everything start-up checks, every problem at once, nothing contacted.
fn check_config(args: &Args) -> ExitCode {
    let path = args.config_file.display();
    let mut report = registry::loader().check_file(&args.config_file);
    let (shard, _) = check_flags(args, &mut report, hardening::open_files_limit());
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let n = report.errors.len();
    if let (Some(config), 0) = (&report.config, n) {
        let sources = &config.sources;
        println!("config {path} is valid; {} source(s):", sources.len());
        for s in sources {
            let on = shard.is_sharded().then(|| {
                let of = Shard::of(&s.key(), shard.total());
                let mine = (of == shard.ordinal()).then_some(", polled here");
                format!(" (shard {of}{})", mine.unwrap_or_default())
            });
            let (key, on) = (s.key(), on.unwrap_or_default());
            println!("  - {key} {}{on}", s.account().describe());
        }
        return ExitCode::SUCCESS;
    }
    let s = if n == 1 { "" } else { "s" };
    println!("config {path} is invalid ({n} problem{s}):");
    for e in &report.errors {
        println!("  - {e}");
    }
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args = parse_args();
    if args.list_platforms {
        println!("{}", registry::platforms().collect::<Vec<_>>().join("\n"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(&args.log_level, &args.log_format) {
        eprintln!("awareness-exporter: {e}");
        return ExitCode::FAILURE;
    }
    if args.check_config {
        return check_config(&args);
    }
    for problem in hardening::disable_core_dumps() {
        tracing::warn!("{problem}");
    }
    let open_files = hardening::raise_open_files_limit();
    let result = match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let result = runtime.block_on(run(args, open_files));
            // A file read stuck on the blocking pool must not hold the process after a shutdown.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            result
        }
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    // Logged once (the log goes to stderr already).
    tracing::error!("{e}");
    ExitCode::FAILURE
}

/// Runs until SIGTERM or SIGINT; an error says why the exporter cannot start.
async fn run(args: Args, open_files: Option<u64>) -> Result<(), String> {
    // Demo tenants live as long as the process.
    let (mut report, path, _demo) = if args.demo {
        let (tenants, config) = demo::start().await?;
        let report = Report {
            config: Some(config),
            ..Report::default()
        };
        (report, None, Some(tenants))
    } else {
        let report = registry::loader().check_file(&args.config_file);
        (report, Some(args.config_file.clone()), None)
    };
    let (shard, max_connections) = check_flags(&args, &mut report, open_files);
    let config = report.into_result().map_err(|e| e.to_string())?;
    use tokio::signal::unix::{signal, SignalKind as Kind};
    let signals = [Kind::hangup(), Kind::terminate(), Kind::interrupt()];
    let [Ok(mut hup), Ok(mut term), Ok(mut int)] = signals.map(signal) else {
        return Err("cannot install the signal handlers".into());
    };
    let listen = args
        .listen_address
        .as_ref()
        .unwrap_or(&config.server.listen);
    let listen = config::listen_address(listen)?; // checked above
    let mut server_config = config.server.clone();
    server_config.enable_lifecycle = args.enable_lifecycle;
    server_config.max_connections = max_connections;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        sources = config.sources.len(),
        demo = args.demo,
        "starting"
    );
    let exporter = Exporter::start_with(config, path, shard, |p| p);
    let server = app::serve(exporter.clone(), &listen, &server_config).await?;
    tracing::info!(address = %server.addr, "listening");

    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                // In a task of its own: a slow file never holds up SIGTERM.
                let (exporter, web) = (exporter.clone(), server.web.clone());
                tokio::spawn(async move {
                    let _ = exporter.reload().await;
                    let _ = web.reload().await;
                });
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    exporter.poller.stop();
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lists_as_arrays;
    use serde_json::{json, Value};

    #[test]
    fn json_log_fields_that_are_lists_are_arrays() {
        let line = br#"{"level":"WARN","fields":{"message":"poll failed","failed":"[\"a\", \"b-c\"]","error":"[x] y"}}"#;
        let out: Value = serde_json::from_slice(&lists_as_arrays(line).unwrap()).unwrap();
        assert_eq!(out["fields"]["failed"], json!(["a", "b-c"]));
        assert_eq!(out["fields"]["error"], "[x] y");
        assert_eq!(out["fields"]["message"], "poll failed");
        assert!(lists_as_arrays(br#"{"fields":{"message":"no list"}}"#).is_none());
        assert!(lists_as_arrays(b"not json").is_none());
    }
}
