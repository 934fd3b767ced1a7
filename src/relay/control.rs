//! The control port: one text command per line, one reply line each.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::faults::{parse_probability, Faults, Partition};
use super::shared::{lock, Shared};

/// Bytes one control connection may send in all; it is a tool for scripts.
const CONTROL_INPUT_LIMIT: u64 = 1 << 20;

enum Reply {
    Line(String),
    Quit,
}

/// Runs one control command and returns the reply line.
fn command(shared: &Shared, line: &str) -> Reply {
    let words: Vec<String> = line
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut faults = *lock(&shared.faults);
    let millis = |w: &str| {
        w.parse::<u64>()
            .map_err(|_| format!("{w:?} is not a number of milliseconds"))
    };
    let result: Result<(), String> = match words.as_slice() {
        [] => return Reply::Line(String::new()),
        ["quit" | "exit"] => return Reply::Quit,
        ["stats"] => return Reply::Line(format!("ok {}", shared.stats_line())),
        ["faults" | "show"] => return Reply::Line(format!("ok {faults}")),
        ["help"] => {
            return Reply::Line(
                "ok commands: partition on|off|up|down, loss P, delay MS [JITTER], jitter MS, \
                 dup P, reorder P, clear, faults, stats, quit"
                    .into(),
            )
        }
        ["partition", w] => <Partition as clap::ValueEnum>::from_str(w, true)
            .ok()
            .map(|p| faults.partition = p)
            .ok_or_else(|| "partition takes on, off, up or down".to_owned()),
        ["loss", w] => parse_probability(w).map(|p| faults.loss = p),
        ["dup", w] => parse_probability(w).map(|p| faults.dup = p),
        ["reorder", w] => parse_probability(w).map(|p| faults.reorder = p),
        ["delay", w] => millis(w).map(|ms| faults.delay_ms = ms),
        ["delay", w, j] => millis(w).and_then(|ms| {
            faults.delay_ms = ms;
            millis(j).map(|j| faults.jitter_ms = j)
        }),
        ["jitter", w] => millis(w).map(|ms| faults.jitter_ms = ms),
        ["clear" | "reset"] => {
            faults = Faults::default();
            Ok(())
        }
        [cmd, ..] => Err(format!(
            "unknown command or wrong arguments: {cmd} (try help)"
        )),
    };
    match result {
        Ok(()) => {
            *lock(&shared.faults) = faults;
            tracing::info!(%faults, "relay faults changed");
            Reply::Line(format!("ok {faults}"))
        }
        Err(e) => Reply::Line(format!("err {e}")),
    }
}

async fn control_session(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader.take(CONTROL_INPUT_LIMIT)).lines();
    while let Some(line) = lines.next_line().await? {
        match command(&shared, &line) {
            Reply::Quit => break,
            Reply::Line(reply) if reply.is_empty() => {}
            Reply::Line(reply) => {
                writer.write_all(reply.as_bytes()).await?;
                writer.write_all(b"\n").await?;
            }
        }
    }
    writer.shutdown().await
}

pub(super) async fn control_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Sessions live in this set, so they end with the relay.
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                sessions.spawn(control_session(stream, shared.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "relay control accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
