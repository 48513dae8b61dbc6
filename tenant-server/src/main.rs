//! `taskharbor`: parse the configuration, start telemetry, then serve or
//! run a maintenance subcommand.

use anyhow::Context;
use clap::Parser;
use secrecy::ExposeSecret;
use taskharbor::config::{Cli, Command, Config, KindArg, TokenCommand, TokenCreate};
use taskharbor::domain::{Scope, WorkerKind};
use taskharbor::store::tokens::{self, Bootstrap, NewToken};
use taskharbor::store::{self, Store};
use taskharbor::{AppState, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if matches!(cli.command, Some(Command::Mcp { .. })) {
        // The bridge's stdout carries the MCP protocol: no log lines there.
        cli.config.log = "off".into();
    }
    let _telemetry = telemetry::init(&cli.config).context("starting telemetry")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => {
            let store = Store::open(&cli.config.data_dir, cli.config.sqlite_sync, 1).await?;
            store.close().await;
            println!("migrations applied to {}", store.path().display());
            Ok(())
        }
        Command::Backup { file } => {
            let db = cli.config.data_dir.join(store::DB_FILE);
            anyhow::ensure!(db.exists(), "no database at {}", db.display());
            store::backup(&db, &file)
                .await
                .with_context(|| format!("backing up to {}", file.display()))?;
            println!("backup written to {}", file.display());
            Ok(())
        }
        Command::Token(TokenCommand::Create(args)) => create_token(&cli.config, args).await,
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| {
                format!("http://127.0.0.1:{}/healthz", cli.config.listen.port())
            });
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
        Command::Mcp { url, token } => Ok(taskharbor::mcp::bridge::run(&url, token).await?),
        Command::Openapi => {
            println!("{}", taskharbor::api::ops::openapi_json());
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let listen = config.listen;
    let state = AppState::open(config)
        .await
        .context("opening the database")?;
    let configured = state
        .config
        .bootstrap_token
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    match tokens::ensure_admin(&state.store.writer, configured.as_deref(), store::now_ms()).await? {
        Bootstrap::Generated(secret) => {
            // Printed once, to stdout only: it is never logged.
            println!(
                "No admin token existed, so one was created. Keep it; it is not shown again:\n\n    {secret}\n"
            );
        }
        Bootstrap::Installed => tracing::info!("bootstrap admin token installed"),
        Bootstrap::AdminExists => {}
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
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

async fn create_token(config: &Config, args: TokenCreate) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir, config.sqlite_sync, 1).await?;
    let scopes = args
        .scopes
        .iter()
        .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?}")))
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
    .map_err(|e| anyhow::anyhow!("invalid token: {e:?}"))?;
    let (info, secret) = tokens::create(&store.writer, &token, None, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.close().await;
    eprintln!(
        "token {} for worker {} ({})",
        info.id,
        info.worker.name,
        info.worker.kind.as_str()
    );
    println!("{secret}");
    Ok(())
}
