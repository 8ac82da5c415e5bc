//! The `rev23-webhooks` command line: `serve` runs the daemon; the other commands are tools
//! around it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rev23_webhooks::config::Config;
use rev23_webhooks::{cli, daemon, projectors};

#[derive(Parser)]
#[command(
    name = "rev23-webhooks",
    version,
    about = "The webhook engine for REV23"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// TOML config file (every key optional; see the README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the config's `data_dir`; default ./rev23-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen address (overrides the config's `listen`; default 127.0.0.1:8023).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Delete every projection (registry, ...) so the next start rebuilds it from the journal.
    /// The daemon must be stopped; the journal itself is not touched.
    RebuildProjections {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check one delivery's signature from its headers, its body and a secret or public key.
    Verify(cli::verify::VerifyArgs),
    /// Run a local receiver that verifies and prints deliveries.
    Listen(cli::listen::ListenArgs),
    /// Replay a journal range into a hook of a running daemon.
    Replay(cli::replay::ReplayArgs),
    /// Write a consistent backup of a running daemon to a file.
    Backup(cli::backup::BackupArgs),
    /// Fill an empty data dir from a backup file (the daemon must not run on that dir).
    Restore(cli::backup::RestoreArgs),
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            data_dir,
            listen,
        } => Config::load(config.as_deref(), listen, data_dir)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                init_logging(&config);
                daemon::run(config).map_err(|e| e.to_string())
            }),
        Command::RebuildProjections { config, data_dir } => {
            Config::load(config.as_deref(), None, data_dir)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    let db = daemon::open_db(&config).map_err(|e| e.to_string())?;
                    projectors::wipe_all(&db).map_err(|e| e.to_string())?;
                    println!(
                        "projections wiped in {}; they rebuild on the next start",
                        config.data_dir.display()
                    );
                    Ok(())
                })
        }
        Command::Verify(args) => cli::verify::run(args),
        Command::Listen(args) => cli::listen::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::Backup(args) => cli::backup::backup(args),
        Command::Restore(args) => cli::backup::restore(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rev23-webhooks: {message}");
            ExitCode::FAILURE
        }
    }
}
