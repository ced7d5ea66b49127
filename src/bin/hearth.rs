//! The `hearth` binary: read configuration, set up logging, bind, and run until a signal.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hearth::Config;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hearth", version, about = "A realtime personal backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

/// Without a command, `hearth` runs the server.
#[derive(Subcommand)]
enum Command {
    /// Write a consistent snapshot to FILE. With --url (or HEARTH_URL) it is taken by the
    /// running server without stopping writers; without, from a stopped server's DATA_DIR.
    Backup {
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// The running server, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "HEARTH_URL")]
        url: Option<String>,
        /// An admin's token (see ADMIN_USERS).
        #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Restore FILE into DATA_DIR (refused while a server uses it). Tokens issued before the
    /// backup keep working: the JWT secret travels with it.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

fn main() -> ExitCode {
    // A missing .env is the normal case; a broken one deserves a word.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("hearth: ignoring .env: {e}");
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    // LOG_FORMAT=json: one JSON object per line, for log shippers.
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(command) = cli.command {
        return runtime.block_on(run_command(command, &cli.config));
    }
    runtime.block_on(async move {
        let addr = SocketAddr::new(cli.config.host, cli.config.port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        match hearth::run(cli.config, listener, hearth::shutdown::signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "hearth stopped");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run_command(command: Command, config: &Config) -> ExitCode {
    let result = match command {
        Command::Backup {
            to,
            url: Some(url),
            token,
        } => {
            let Some(token) = token else {
                eprintln!("hearth: backup --url needs --token (or HEARTH_TOKEN), an admin's token");
                return ExitCode::FAILURE;
            };
            hearth::ops::backup_online(&url, &token, &to)
                .await
                .map(|bytes| format!("backup: {bytes} bytes written to {}", to.display()))
        }
        Command::Backup { to, url: None, .. } => hearth::ops::backup_offline(config, &to)
            .map(|rows| format!("backup: {rows} rows written to {}", to.display())),
        Command::Restore { from } => hearth::ops::restore(config, &from).map(|()| {
            format!(
                "restore: {} restored into {}",
                from.display(),
                config.data_dir.display()
            )
        }),
    };
    match result {
        Ok(message) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::FAILURE
        }
    }
}
