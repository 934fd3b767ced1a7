//! Resource bounds of a real `veto serve` over real sockets: header, body,
//! idle and write timeouts, the connection cap, watchers that never read,
//! and rate limits.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Veto, ADMIN_TOKEN};

/// Raises this test process's open-files limit, for the many sockets below.
fn raise_fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    l.rlim_cur
}

fn connect(veto: &Veto) -> TcpStream {
    TcpStream::connect(("127.0.0.1", veto.port())).unwrap()
}

/// Reads one answer (head and a Content-Length body) from a keep-alive
/// connection; `None` if the connection ends first.
fn read_answer(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut byte).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&byte[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return Some((status, format!("{head}\r\n\r\n{body}")));
        }
        let n = s.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
}

fn check_on(s: &mut TcpStream) -> Option<(u16, String)> {
    s.write_all(b"GET /v1/check?jti=j1 HTTP/1.1\r\nhost: veto\r\n\r\n")
        .ok()?;
    read_answer(s)
}

/// How long until the server closes `s` (reads EOF or a reset), at most `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sink = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut sink) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn metric(veto: &Veto, line_start: &str) -> f64 {
    let text = veto.get("/metrics").text().unwrap();
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn partial_headers_are_closed_after_the_header_timeout_and_a_stalled_body_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(
        dir.path(),
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--idle-timeout",
            "30",
        ],
    );
    let mut idle = connect(&veto);
    let mut partial = connect(&veto);
    partial
        .write_all(b"GET /v1/check?jti=x HTTP/1.1\r\nhost: veto\r\n")
        .unwrap();
    let took = closed_within(&mut partial, Duration::from_secs(10)).expect("closed");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );

    let mut stalled = connect(&veto);
    stalled
        .write_all(
            b"POST /v1/check HTTP/1.1\r\nhost: veto\r\ncontent-length: 100\r\n\r\n[{\"jti\":",
        )
        .unwrap();
    let start = Instant::now();
    let (status, text) = read_answer(&mut stalled).expect("an answer");
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(start.elapsed() < Duration::from_secs(5));

    // A connection that sent nothing is idle, not late with its headers: it
    // is still served after the header timeout.
    let (status, _) = check_on(&mut idle).expect("the idle connection is open");
    assert_eq!(status, 200);
    assert!(metric(&veto, "veto_http_timeouts_total{kind=\"header\"}") >= 1.0);
    assert!(metric(&veto, "veto_http_timeouts_total{kind=\"body\"}") >= 1.0);
}

#[test]
fn beyond_the_connection_cap_new_connections_get_503_while_open_ones_are_served() {
    const CAP: usize = 200;
    const EXTRA: usize = 2_000;
    assert!(raise_fd_limit() > (CAP + EXTRA + 100) as u64);
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(
        dir.path(),
        &[
            "--max-connections",
            &CAP.to_string(),
            // Long enough for the connections below to open on a busy machine.
            "--idle-timeout",
            "15",
        ],
    );
    let mut first = connect(&veto);
    assert_eq!(check_on(&mut first).unwrap().0, 200);

    let mut sockets: Vec<TcpStream> = (0..EXTRA).map(|_| connect(&veto)).collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    // Each socket is either held open by the node (nothing to read) or was
    // answered 503 and closed.
    let (mut held, mut refused) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sockets.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let mut waiting = Vec::new();
        for mut s in sockets.drain(..) {
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
                    refused += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => waiting.push(s),
                other => panic!("a refused connection must read its 503 first: {other:?}"),
            }
        }
        // Stable once the accepted ones are all that is left.
        if waiting.len() + refused == EXTRA && waiting.len() < CAP {
            held = waiting;
            break;
        }
        sockets = waiting;
    }
    // The cap less `first` and the test client's pooled connection.
    assert!(
        held.len() >= CAP - 3 && held.len() < CAP,
        "held {} refused {refused}",
        held.len()
    );
    assert_eq!(held.len() + refused, EXTRA);
    println!("held {}, refused {refused}", held.len());

    // Open connections keep being served; a new one is refused.
    assert_eq!(check_on(&mut first).unwrap().0, 200);
    let mut fresh = connect(&veto);
    let (status, text) = check_on(&mut fresh).expect("a 503");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"unavailable\""), "{text}");
    assert!(text.to_lowercase().contains("retry-after: 1"), "{text}");

    // After the idle timeout the node closes the idle ones...
    for s in &mut held {
        s.set_nonblocking(false).unwrap();
    }
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(20)).is_some(),
            "an idle connection was not closed"
        );
    }
    // ...and answers new connections again.
    let mut after = connect(&veto);
    assert_eq!(check_on(&mut after).unwrap().0, 200);
    assert!(metric(&veto, "veto_http_connections_refused_total") >= (EXTRA - CAP) as f64);
    assert!(metric(&veto, "veto_http_timeouts_total{kind=\"idle\"}") >= (CAP - 3) as f64);
}

/// Resident memory of a process, in KiB: (now, peak).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Opens a watch stream and reads up to its `ready` event, then leaves the
/// socket unread.
fn open_watcher(veto: &Veto) -> TcpStream {
    let mut s = connect(veto);
    write!(
        s,
        "GET /v1/watch HTTP/1.1\r\nhost: veto\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("event: ready") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    s
}

fn ingest(veto: &Veto, records: usize, tag: &str) {
    for b in 0..records / 10_000 {
        let batch: Vec<Value> = (0..10_000)
            .map(|i| json!({"scope": "token", "iss": "https://idp.example", "jti": format!("{tag}-{b}-{i}"), "reason": "bounds"}))
            .collect();
        let r = veto.post_json("/v1/revocations/batch", &Value::Array(batch));
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
}

/// Reads a stalled watcher to its end: (records received, the last event's
/// text).
fn drain_watcher(s: &mut TcpStream) -> (usize, String) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&text[text.len().saturating_sub(4096)..])
            .contains("event: resync")
        {
            // The stream ends after resync; the rest is its data line.
            std::thread::sleep(Duration::from_millis(200));
            s.set_nonblocking(true).unwrap();
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&text).to_string();
    let records = text.matches("event: record").count();
    let last = text
        .rsplit("\n\n")
        .find(|e| e.contains("event:"))
        .unwrap_or("")
        .to_owned();
    (records, last)
}

#[test]
fn watchers_that_never_read_keep_the_node_within_its_memory_bound() {
    // VETO_BOUNDS_WATCHERS sets another count, to measure (bench/RESULTS.md).
    let watchers_n: usize = std::env::var("VETO_BOUNDS_WATCHERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    const RECORDS: usize = 200_000;
    const RING: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(
        dir.path(),
        &[
            "--watch-buffer",
            &RING.to_string(),
            "--write-timeout",
            "600",
        ],
    );
    let pid = veto.child.id();
    let mut watchers: Vec<TcpStream> = (0..watchers_n).map(|_| open_watcher(&veto)).collect();
    let (before, _) = rss_kib(pid);
    let start = Instant::now();
    ingest(&veto, RECORDS, "w");
    let (after, peak) = rss_kib(pid);
    println!(
        "{watchers_n} stalled watchers, {RECORDS} records in {:.1} s: VmRSS {} MiB before, {} MiB after, peak {} MiB",
        start.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024,
        peak / 1024
    );
    // The index, the sled cache and the ring, and nothing per record sent
    // to a watcher: 200,000 records as SSE are about 70 MB per watcher.
    assert!(
        peak < 400 * 1024,
        "peak resident memory {} MiB",
        peak / 1024
    );
    assert!(veto.revoked(&[("iss", "https://idp.example"), ("jti", "w-19-9999")]));

    // Each watcher, reading again, gets what was already on its way (socket
    // buffers, at most one chunk) and then resync: never more than the ring.
    for w in &mut watchers {
        let (records, last) = drain_watcher(w);
        assert!(last.contains("event: resync"), "{last}");
        assert!(last.contains("too_far_behind"), "{last}");
        assert!(records <= RING, "{records} records");
        println!("a resumed watcher got {records} records, then resync");
    }
}

#[test]
fn a_watcher_that_reads_nothing_is_disconnected_after_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &["--write-timeout", "2", "--max-watchers", "1"]);
    let mut stalled = open_watcher(&veto);
    // Enough records to fill the socket buffers between them.
    ingest(&veto, 60_000, "s");
    let gone = Instant::now();
    support::eventually(
        Duration::from_secs(20),
        "the stalled watcher closed",
        || metric(&veto, "veto_http_timeouts_total{kind=\"write\"}") >= 1.0,
    );
    assert!(gone.elapsed() < Duration::from_secs(15));
    // Its place among the watchers is free again.
    support::eventually(Duration::from_secs(5), "a new watcher", || {
        let r = veto.admin_get("/v1/watch?heartbeat=1");
        r.status() == 200
    });
    let _ = closed_within(&mut stalled, Duration::from_secs(1));
}

fn client_from(ip: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(
        dir.path(),
        &[
            "--write-rate",
            "1",
            "--write-burst",
            "3",
            "--lookup-rate",
            "1",
            "--lookup-burst",
            "5",
        ],
    );
    let revoke = |token: &str, jti: &str| {
        veto.http
            .post(format!("{}/v1/revocations", veto.url))
            .bearer_auth(token)
            .json(&json!({"scope": "token", "jti": jti}))
            .send()
            .unwrap()
    };
    for i in 0..3 {
        assert_eq!(revoke(ADMIN_TOKEN, &format!("r{i}")).status(), 201);
    }
    let r = revoke(ADMIN_TOKEN, "r3");
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Another token has its own bucket (this one is not valid: 401, not 429).
    assert_eq!(revoke("someone-else", "x").status(), 401);

    // Lookups: one address over its burst, others still served, and writes
    // being limited takes nothing from lookups.
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let check = |c: &reqwest::blocking::Client| {
        c.get(format!("{}/v1/check?jti=r1", veto.url))
            .send()
            .unwrap()
    };
    for _ in 0..5 {
        let r = check(&a);
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().unwrap()["revoked"], true);
    }
    let r = check(&a);
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let r = a
        .get(format!("{}/v1/auth", veto.url))
        .bearer_auth("opaque")
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "/v1/auth shares the address's bucket");
    assert_eq!(check(&b).status(), 200);
    // Other endpoints are not limited.
    assert_eq!(
        a.get(format!("{}/healthz", veto.url))
            .send()
            .unwrap()
            .status(),
        200
    );
    // The bucket refills.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(check(&a).status(), 200);
    assert!(metric(&veto, "veto_rate_limited_total{class=\"lookup\"}") >= 2.0);
    assert!(metric(&veto, "veto_rate_limited_total{class=\"write\"}") >= 1.0);
}
