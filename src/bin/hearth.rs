//! The `hearth` binary: read configuration, set up logging, bind, and run until a signal.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hearth::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// mimalloc instead of glibc's malloc: the writer thread spends much of its time allocating
/// and freeing document trees, and glibc's consolidation showed at the top of its profile
/// (BENCHMARKS.md, "Changes measured").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Start DATA_DIR's store once with a damaged write-ahead log, keeping what is readable:
    /// what the start refused, said and done (each step is logged at WARN). Keep a copy of
    /// the data directory first.
    Recover {
        /// Required: dropping acknowledged updates is never a default.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Bring accounts and documents from another server. Through the running server with
    /// --url (or HEARTH_URL) and an admin's --token, or into a stopped server's DATA_DIR.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
        /// The running server, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "HEARTH_URL", global = true)]
        url: Option<String>,
        /// An admin's token.
        #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
    },
    /// Manage accounts: through the running server with --url (or HEARTH_URL) and an admin's
    /// --token, or on a stopped server's DATA_DIR without.
    User {
        #[command(subcommand)]
        action: UserCommand,
        /// The running server, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "HEARTH_URL", global = true)]
        url: Option<String>,
        /// An admin's token.
        #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImportFrom {
    /// A personal-backend `.data/` directory (one `<username>.json` per user): accounts and
    /// documents as they were; names Hearth does not accept are reported and skipped.
    /// Running it twice changes nothing. Set LEGACY_JWT_SECRET so their tokens keep working.
    PersonalBackend { dir: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. Reads the password from the first line of stdin with
    /// --password-stdin; otherwise generates one and prints it.
    Create {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts: name, creation time, disabled, admin.
    List,
    /// Refuse the account's tokens at once, close its sockets, refuse its logins.
    Disable { name: String },
    /// Undo `disable`.
    Enable { name: String },
    /// Set a new password (stdin with --password-stdin, else generated and printed) and
    /// revoke every session of the account.
    ResetPassword {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Let the account use the admin API (persisted, unlike ADMIN_USERS).
    GrantAdmin { name: String },
    /// Withdraw `grant-admin` (accounts named in ADMIN_USERS stay admins).
    RevokeAdmin { name: String },
    /// Delete the account: its document, change log, sessions and blob references; its
    /// sockets close and its name leaves every access list.
    Delete { name: String },
}

/// Where `command` acts: the running server at `--url` with an admin's `--token`, or the
/// stopped server's data dir.
fn target<'a>(
    command: &str,
    url: &'a Option<String>,
    token: &'a Option<String>,
    config: &'a Config,
) -> Result<hearth::ops::users::Target<'a>, String> {
    match (url, token) {
        (Some(url), Some(token)) => Ok(hearth::ops::users::Target::Server { url, token }),
        (Some(_), None) => Err(format!(
            "{command} --url needs --token (or HEARTH_TOKEN), an admin's token"
        )),
        (None, _) => Ok(hearth::ops::users::Target::DataDir(config)),
    }
}

/// The password to set: stdin's first line, or a generated one that is printed.
fn password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        let generated = hearth::names::password();
        println!("password: {generated}");
        Ok(generated)
    }
}

fn user_action(command: UserCommand) -> Result<hearth::ops::users::Action, String> {
    use hearth::ops::users::Action;
    Ok(match command {
        UserCommand::Create {
            name,
            password_stdin,
        } => Action::Create {
            password: password(password_stdin)?,
            name,
        },
        UserCommand::List => Action::List,
        UserCommand::Disable { name } => Action::Disable(name),
        UserCommand::Enable { name } => Action::Enable(name),
        UserCommand::ResetPassword {
            name,
            password_stdin,
        } => Action::ResetPassword {
            password: password(password_stdin)?,
            name,
        },
        UserCommand::GrantAdmin { name } => Action::GrantAdmin(name),
        UserCommand::RevokeAdmin { name } => Action::RevokeAdmin(name),
        UserCommand::Delete { name } => Action::Delete(name),
    })
}

/// Transparent huge pages off for this process, as Redis does by default (`disable-thp`).
/// Why: mimalloc asks for huge pages on its 1 GiB arenas (`MADV_HUGEPAGE`), and the kernel's
/// khugepaged then collapses them in the background while holding the process's memory-map
/// lock, so every thread that faults a page in meanwhile waits. Measured (`perf record -e
/// sched:*`, c) 1000 after b)): a session and the writer thread blocked 2–5 ms behind
/// khugepaged, an ack of 5–10 ms against ≈ 1.1 ms. The heap is small (tens of MiB), so huge
/// pages save little here.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and reads or writes no
        // memory of this process. It fails only on kernels without it (before 3.15), where
        // there is nothing to turn off.
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    // A missing .env is the normal case; a broken one deserves a word.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("hearth: ignoring .env: {e}");
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(hearth::logging::Stdout);
    // RUST_LOG filters standard output; warnings and errors are kept for the dashboard
    // whatever it says.
    let registry = tracing_subscriber::registry().with(
        hearth::logging::KeepRecent.with_filter(tracing_subscriber::filter::LevelFilter::WARN),
    );
    // LOG_FORMAT=json: one JSON object per line, for log shippers.
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        registry.with(logs.json().with_filter(filter)).init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry
            .with(logs.with_ansi(ansi).with_filter(filter))
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
    // Account and import commands answer on stdout (a listing, a report: data); the others
    // report on stderr.
    let to_stdout = matches!(command, Command::User { .. } | Command::Import { .. });
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
        Command::User { action, url, token } => {
            match (user_action(action), target("user", &url, &token, config)) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(action), Ok(target)) => hearth::ops::users::run(action, target).await,
            }
        }
        Command::Import {
            from: ImportFrom::PersonalBackend { dir },
            url,
            token,
        } => match target("import", &url, &token, config) {
            Err(e) => Err(e),
            Ok(target) => hearth::ops::import::run(&dir, target).await,
        },
        Command::Recover { accept_loss } => {
            hearth::ops::recover(config, accept_loss).await.map(|()| {
                format!(
                    "recover: {} opens again; what was dropped is in the warnings above",
                    config.data_dir.display()
                )
            })
        }
        Command::Restore { from } => hearth::ops::restore(config, &from).map(|()| {
            format!(
                "restore: {} restored into {}",
                from.display(),
                config.data_dir.display()
            )
        }),
    };
    match result {
        Ok(message) if to_stdout => {
            println!("{message}");
            ExitCode::SUCCESS
        }
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
