//! `taskharbor`: parse the configuration, start telemetry, then serve or
//! run a maintenance subcommand.

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use secrecy::ExposeSecret;
use std::io::Write;
use taskharbor::commands;
use taskharbor::config::{AdminCommand, Cli, Command, Config, KindArg, TokenCommand, TokenCreate};
use taskharbor::domain::{Scope, WorkerKind};
use taskharbor::store::tokens::{Bootstrap, NewToken};
use taskharbor::store::{self, Store};
use taskharbor::{AppState, telemetry};

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // A sentence per cause, not Rust's Debug of the error value.
            let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let top_flags_given = matches
        .ids()
        .any(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine));
    let command = cli.command.take();
    if let Some(Command::Serve(_)) = &command
        && top_flags_given
    {
        anyhow::bail!("give the server flags after `serve` (or leave `serve` out)");
    }
    let log_config = match &command {
        Some(Command::Serve(config)) => config.as_ref().clone(),
        _ => cli.config.clone(),
    };
    let mut log_config = log_config;
    if matches!(command, Some(Command::Mcp { .. }) | Some(Command::Openapi)) {
        // The bridge's stdout carries the MCP protocol: no log lines there.
        log_config.log = "off".into();
    }
    let _telemetry = telemetry::init(&log_config).context("starting telemetry")?;
    let top = &cli.config;
    match command {
        None => serve(cli.config.clone()).await,
        Some(Command::Serve(config)) => serve(*config).await,
        Some(Command::Migrate(data)) => {
            let store = Store::open(&data.resolve(top), top.sqlite_sync, 1).await?;
            store.close().await;
            print_out(&format!("migrations applied to {}", store.path().display()))
        }
        Some(Command::Backup { file, data }) => {
            let db = data.resolve(top).join(store::DB_FILE);
            anyhow::ensure!(db.exists(), "no database at {}", db.display());
            store::backup(&db, &file)
                .await
                .with_context(|| format!("backing up to {}", file.display()))?;
            print_out(&format!("backup written to {}", file.display()))
        }
        Some(Command::Token(TokenCommand::Create(args))) => create_token(top, args).await,
        Some(Command::Healthcheck { url }) => {
            let url =
                url.unwrap_or_else(|| format!("http://127.0.0.1:{}/healthz", top.listen.port()));
            let response = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            Ok(())
        }
        Some(Command::Admin(AdminCommand::Recover { data, name })) => {
            recover_admin(top, &data.resolve(top), &name).await
        }
        Some(Command::Mcp { url, token }) => Ok(taskharbor::mcp::bridge::run(&url, token).await?),
        Some(Command::Openapi) => print_out(taskharbor::api::ops::openapi_json()),
    }
}

/// Writes a line to stdout; a reader that went away (`| head`) is not an
/// error worth a panic or a message.
fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let listen = config.listen;
    // Bind first: if the port is taken, nothing is created and no one-time
    // admin token is printed and lost.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let state = AppState::open(config)
        .await
        .context("opening the database")?;
    let configured = state
        .config
        .bootstrap_token
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    match commands::tokens::ensure_admin(&state.store, configured.as_deref(), store::now_ms())
        .await?
    {
        Bootstrap::Generated(secret) => {
            // Printed once, to stdout only: it is never logged.
            print_out(&format!(
                "No admin token existed, so one was created. Keep it; it is not shown again\n(lost it? `taskharbor admin recover` mints another):\n\n    {secret}\n"
            ))?;
        }
        Bootstrap::Installed => tracing::info!("bootstrap admin token installed"),
        Bootstrap::AdminExists => {}
    }
    tracing::info!(addr = %listener.local_addr()?, db = %state.store.path().display(), startup_ms = started.elapsed().as_millis() as u64, "taskharbor listening");
    taskharbor::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A validation failure as the CLI user reads it: one line per field.
fn field_errors(errors: &taskharbor::domain::FieldErrors) -> anyhow::Error {
    let lines: Vec<String> = errors
        .iter()
        .map(|(field, message)| format!("{field} {message}"))
        .collect();
    anyhow::anyhow!("invalid token: {}", lines.join("; "))
}

async fn create_token(top: &Config, args: TokenCreate) -> anyhow::Result<()> {
    let store = Store::open(&args.data.resolve(top), top.sqlite_sync, 1).await?;
    let scopes = args
        .scopes
        .iter()
        .map(|s| {
            Scope::parse(s).with_context(|| {
                format!("unknown scope {s:?}: use queue:read, queue:write, board:admin or admin")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kind = match args.kind {
        KindArg::Human => WorkerKind::Human,
        KindArg::Agent => WorkerKind::Agent,
    };
    let now = store::now_ms();
    let expires = args.expires_in_days.map(|d| now + d * 86_400_000);
    let token = NewToken::parse(
        &args.name,
        &args.worker,
        kind,
        scopes,
        args.board_id,
        expires,
        now,
    )
    .map_err(|e| field_errors(&e))?;
    let minted = commands::tokens::create(&store, &token, now).await;
    store.close().await;
    let (info, secret) = minted.map_err(|e| match e {
        store::CommandError::Rule(taskharbor::domain::DomainError::Validation(fields)) => {
            field_errors(&fields)
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    eprintln!(
        "token {} for worker {} ({})",
        info.id,
        info.worker.name,
        info.worker.kind.as_str()
    );
    print_out(&secret)
}

async fn recover_admin(top: &Config, data_dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let db = data_dir.join(store::DB_FILE);
    anyhow::ensure!(
        db.exists(),
        "no database at {}: point --data-dir at the server's data directory",
        db.display()
    );
    let store = Store::open(data_dir, top.sqlite_sync, 1).await?;
    let minted = commands::tokens::recover_admin(&store, name, store::now_ms()).await;
    store.close().await;
    let (info, secret) = minted.map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "admin token {} minted for worker {}; revoke any lost admin token with DELETE /api/tokens/{{id}}",
        info.id, info.worker.name
    );
    print_out(&secret)
}
