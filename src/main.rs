//! awareness-exporter: command line, start-up, signals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::config::{self, Config, SourceConfig};

#[derive(Debug, Parser)]
#[command(
    name = "awareness-exporter",
    version,
    about = "Prometheus exporter for security awareness training platforms (Mimecast Awareness Training, CyberPilot)"
)]
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
    /// Serve metrics from built-in simulated Mimecast and CyberPilot tenants (no credentials).
    #[arg(long)]
    demo: bool,
    /// Validate the configuration without contacting anything, print a verdict, and exit.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_logging(level: &str, format: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid --log.level `{level}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

fn describe(config: &Config) -> String {
    let mut out = format!("{} source(s):\n", config.sources.len());
    for s in &config.sources {
        let detail = match s {
            SourceConfig::CyberPilot(c) => format!("{} (account id {})", c.base_url, c.account_id),
            SourceConfig::Mimecast(m) => format!(
                "{} ({}, endpoints: {})",
                m.base_url,
                match m.auth {
                    config::MimecastAuth::OAuth2 { .. } => "oauth2",
                    config::MimecastAuth::Hmac { .. } => "hmac",
                },
                m.endpoints
                    .iter()
                    .map(|e| e.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push_str(&format!("  - {} {}\n", s.key(), detail));
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(&args.log_level, &args.log_format) {
        eprintln!("awareness-exporter: {e}");
        return ExitCode::FAILURE;
    }
    if args.check_config {
        return match config::load(&args.config_file) {
            Ok(c) => {
                println!(
                    "config {} is valid; {}",
                    args.config_file.display(),
                    describe(&c)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("config {} is invalid: {e}", args.config_file.display());
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("awareness-exporter: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("awareness-exporter: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Demo tenants live as long as the process.
    let (config, path, _demo) = if args.demo {
        let demo = awareness_exporter::demo::Demo::start()
            .await
            .map_err(|e| format!("cannot start the demo tenants: {e}"))?;
        let config = demo.config().map_err(|e| e.to_string())?;
        (config, None, Some(demo))
    } else {
        let config = config::load(&args.config_file).map_err(|e| e.to_string())?;
        (config, Some(args.config_file.clone()), None)
    };
    let listen = args
        .listen_address
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let server_config = config.server.clone();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        sources = config.sources.len(),
        demo = args.demo,
        "starting"
    );
    if config.sources.is_empty() {
        tracing::warn!("no [[cyberpilot]] or [[mimecast]] accounts configured; only health metrics will be served");
    }
    let exporter = Exporter::start(config, path);
    let server = app::serve(exporter.clone(), &listen, &server_config).await?;
    tracing::info!(address = %server.addr, "listening");

    wait_for_signals(&exporter).await;
    tracing::info!("shutting down");
    exporter.poller.stop();
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signals(exporter: &Exporter) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                let _ = exporter.reload().await;
            }
            _ = term.recv() => return,
            _ = int.recv() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_exporter: &Exporter) {
    let _ = tokio::signal::ctrl_c().await;
}
