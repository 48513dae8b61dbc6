//! What the benchmarks share: the command line (`--name value`,
//! `--name=value`, `--quick`, each also read from `TH_BENCH_<NAME>`),
//! latency samples, and what the reports print about the machine.
//! Included with `#[path = "shared/mod.rs"] mod shared;` (a folder under
//! `benches/` is not a bench target of its own).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The parsed command line.
pub struct Args(BTreeMap<String, String>);

impl Args {
    /// Parses `std::env::args()`. `cargo bench` appends `--bench`, which is
    /// ignored; `-h`/`--help` prints `usage` and exits. With `lenient`
    /// (a smoke run under `cargo test`, whose libtest flags and filters
    /// reach every test binary) anything else is ignored; otherwise an
    /// unknown positional argument is an error.
    pub fn parse(usage: &str, lenient: bool) -> Result<Self> {
        let mut args = BTreeMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--bench" => {}
                _ if lenient => {}
                "--quick" => {
                    args.insert("quick".into(), "1".into());
                }
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                flag if flag.starts_with("--") => {
                    let (name, value) = match flag[2..].split_once('=') {
                        Some((n, v)) => (n.to_owned(), v.to_owned()),
                        None => (
                            flag[2..].to_owned(),
                            it.next().ok_or_else(|| format!("{flag} needs a value"))?,
                        ),
                    };
                    args.insert(name, value);
                }
                other => return Err(format!("unexpected argument {other:?}\n\n{usage}").into()),
            }
        }
        Ok(Self(args))
    }

    /// `--name`'s value, else `TH_BENCH_<NAME>` (dashes as underscores).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| {
            std::env::var(format!(
                "TH_BENCH_{}",
                name.replace('-', "_").to_uppercase()
            ))
            .ok()
        })
    }

    /// Whether a switch such as `quick` is on (set, and not `0`/`false`/empty).
    pub fn on(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
    }

    /// `--name` as a number, else `default`.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}").into())
        })
    }

    /// Switches `quick` on (the smoke run).
    pub fn set_quick(&mut self) {
        self.0.insert("quick".into(), "1".into());
    }
}

/// Durations of one figure, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<u64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile in milliseconds; NaN when empty.
    pub fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
    }

    pub fn p50(&self) -> f64 {
        self.pct(50.0)
    }

    /// The fastest, in milliseconds; NaN when empty.
    pub fn best(&self) -> f64 {
        self.0.iter().min().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    }

    /// `p50 / p95 / p99 / max` in ms.
    pub fn summary(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            self.pct(50.0),
            self.pct(95.0),
            self.pct(99.0),
            self.pct(100.0)
        )
    }

    /// `p50 …, best …, p95 … (n=…)`.
    pub fn text(&self) -> String {
        format!(
            "p50 {:.2} ms, best {:.2} ms, p95 {:.2} ms (n={})",
            self.p50(),
            self.best(),
            self.pct(95.0),
            self.0.len()
        )
    }

    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.iter().sum::<u64>() as f64 / self.0.len() as f64 / 1000.0
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A progress line on stderr (the report goes to stdout).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}
