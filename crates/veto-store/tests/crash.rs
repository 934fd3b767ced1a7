//! Durability under `kill -9`: a child process appends and prunes in a loop and
//! reports each call that returned; the parent kills it at a random moment and
//! checks what the reopened store holds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{node, token};
use veto_core::RecordId;
use veto_store::{OpenOptions, Store};

const CHILD_ENV: &str = "VETO_STORE_CRASH_CHILD";
const ORIGIN: u64 = 42;
const BATCH: u64 = 500;
const PRUNE: u64 = 100;

/// Runs in the child: batch `k` is seqs `k*BATCH+1 ..= (k+1)*BATCH`; after each
/// append, the first `PRUNE` records of the batch two back are pruned.
fn child(dir: &str) -> ! {
    let store = Store::open(dir.as_ref(), OpenOptions::default()).unwrap();
    let mut k = store.covered().unwrap().max_seq(node(ORIGIN)) / BATCH;
    loop {
        let batch: Vec<_> = (k * BATCH + 1..=(k + 1) * BATCH)
            .map(|s| token(ORIGIN, s, 1_700_000_000 + s, 1_800_000_000))
            .collect();
        store.append(&batch).unwrap();
        println!("appended {k}");
        if k >= 2 {
            let victims: Vec<_> = (0..PRUNE)
                .map(|i| RecordId {
                    origin: node(ORIGIN),
                    seq: (k - 2) * BATCH + 1 + i,
                })
                .collect();
            store.prune(&victims).unwrap();
            println!("pruned {}", k - 2);
        }
        k += 1;
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_and_partial_ones_leave_nothing() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut appended = Vec::new();
    let mut pruned = Vec::new();
    for round in 0..4u64 {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_writes_survive_kill_9_and_partial_ones_leave_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = proc.stdout.take().unwrap();
        // Kill after a varying number of acknowledgements, mid-stream.
        let stop_after = 3 + round * 4;
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("appended ") {
                appended.push(k.parse::<u64>().unwrap());
                acks += 1;
            } else if let Some(k) = line.strip_prefix("pruned ") {
                pruned.push(k.parse::<u64>().unwrap());
            }
            if acks >= stop_after {
                proc.kill().unwrap(); // SIGKILL
                break;
            }
        }
        proc.wait().unwrap();

        let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        let report = store.verify().unwrap();
        let covered = store.covered().unwrap();
        let max_batch = covered.max_seq(node(ORIGIN)) / BATCH;
        assert_eq!(
            covered.max_seq(node(ORIGIN)) % BATCH,
            0,
            "half a batch is covered"
        );
        assert_eq!(covered.origin(node(ORIGIN)).unwrap().range_count(), 1);
        for k in &appended {
            assert!(
                *k < max_batch,
                "acknowledged batch {k} lost in round {round}"
            );
        }
        let mut live = 0;
        for k in 0..max_batch {
            let present = store
                .read_range(node(ORIGIN), k * BATCH + 1..=(k + 1) * BATCH, usize::MAX)
                .unwrap()
                .len() as u64;
            live += present;
            if pruned.contains(&k) {
                assert_eq!(present, BATCH - PRUNE, "pruned batch {k} resurrected");
            } else {
                assert!(
                    present == BATCH || present == BATCH - PRUNE,
                    "batch {k} is half pruned: {present} present"
                );
            }
        }
        assert_eq!(report.records, live);
        assert_eq!(store.live_count(), live);
    }
}
