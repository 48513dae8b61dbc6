//! The real operator controller, in-process.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use kube::Client;
use taskharbor_operator::{
    config::{Cli, Command as OperatorCommand, RunArgs},
    metrics::Metrics,
    run_operator,
};
use tokio::sync::watch;

/// An operator instance running in this process.
pub struct Operator {
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Starts the real operator (`run_operator`, as `main` does) with `flags`
    /// added to `run --watch-namespace <ns>`.
    pub fn start(client: Client, namespace: &str, flags: &[&str]) -> Operator {
        let mut argv = vec!["taskharbor-operator", "run", "--watch-namespace", namespace];
        argv.extend_from_slice(flags);
        let args = match <Cli as clap::Parser>::try_parse_from(argv) {
            Ok(Cli {
                command: OperatorCommand::Run(args),
            }) => args,
            other => panic!("bad operator flags: {other:?}"),
        };
        Self::start_with(client, args)
    }

    pub fn start_with(client: Client, args: RunArgs) -> Operator {
        let metrics = Metrics::new().expect("metrics");
        let (shutdown, rx) = watch::channel(false);
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            run_operator(&args, client, m, Arc::new(AtomicBool::new(false)), rx).await;
        });
        Operator {
            metrics,
            shutdown,
            task,
        }
    }

    /// Vanishes without releasing the lease (like a killed pod): the task is
    /// aborted; the controller it started stops because its stop signal's
    /// sender is dropped.
    pub fn crash(self) {
        self.task.abort();
    }

    /// Graceful stop (as on SIGTERM): in-flight reconciles finish, the lease is released.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}
