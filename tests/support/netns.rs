//! Real networks for black-box tests: every node in its own Linux network
//! namespace, the namespaces joined by veth pairs to a bridge in a hub
//! namespace, delay and loss on the links (`tc netem` on each node's
//! interface, or where the kernel lacks netem a fault-injecting `veto-relay`
//! per node in the hub), and nftables rules inside a node's namespace for
//! partitions that drop packets at its interface. Needs root, `ip` and `nft`;
//! [`Net::create_or_skip`] says why a test cannot run.
//!
//! Addresses, in the subnet 10.77.S.0/24 of one network (S is picked per run,
//! so runs in parallel do not collide):
//!
//! - `.1`: the root namespace's end of a veth pair into the hub, so that the
//!   test process reaches the nodes' HTTP APIs and the relays' control ports;
//! - `.254`: the hub's bridge, where the relays listen;
//! - `.11`, `.12`, ...: the nodes, each on `eth0` in its own namespace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;

use super::{eventually, find_executable, gateways_required, require_gateway, tls_args, Veto};
use super::{veto_bin, ADMIN_TOKEN};

/// HTTP port of every node (each has its namespace to itself).
pub const HTTP_PORT: u16 = 7400;
/// Gossip (QUIC) port of every node.
pub const GOSSIP_PORT: u16 = 7500;
/// The relay to node `i` listens on this port plus `i` in the hub.
const RELAY_PORT: u16 = 7600;
/// The control port of the relay to node `i` is this plus `i`.
const CONTROL_PORT: u16 = 7700;
/// The nftables table a partition adds to a node's namespace.
const PARTITION_TABLE: &str = "veto_partition";

/// One test's network: a hub namespace with a bridge and one namespace per
/// node. Dropping it kills what still runs in the namespaces and deletes them.
pub struct Net {
    /// The third octet of the subnet.
    subnet: u8,
    hub: String,
    nodes: Vec<String>,
    /// The root namespace's end of the veth pair into the hub.
    root_link: String,
    /// Held while the network exists, so no other run picks the subnet.
    _lock: File,
}

impl Net {
    /// A network for `n` nodes; `None` after printing why when this machine
    /// cannot make one (not root, no `ip` or `nft`, namespaces refused), and a
    /// panic instead under `VETO_REQUIRE_GATEWAYS=1`.
    pub fn create_or_skip(n: usize) -> Option<Net> {
        if !running_as_root() {
            return skip("network namespace tests need root (to run `ip netns add` and `nft`)");
        }
        require_gateway("ip (iproute2)", find_executable("ip"))?;
        require_gateway("nft (nftables)", find_executable("nft"))?;
        match Net::create(n) {
            Ok(net) => Some(net),
            Err(e) => skip(&format!("cannot make network namespaces here: {e}")),
        }
    }

    /// Makes the namespaces, the bridge and the links, or says what failed
    /// (whatever was made is deleted again).
    pub fn create(n: usize) -> Result<Net, String> {
        assert!(n <= 200, "addresses .11 up run out past 200 nodes");
        let (subnet, lock) = claim_subnet()?;
        let tag = format!("{subnet}-{}", std::process::id());
        let net = Net {
            subnet,
            hub: format!("veto-{tag}-hub"),
            nodes: (0..n).map(|i| format!("veto-{tag}-n{i}")).collect(),
            // At most 14 bytes (a pid has at most 7 digits); the limit is 15.
            root_link: format!("vtr{tag}"),
            _lock: lock,
        };
        // On an error, dropping `net` deletes what was made.
        net.build()?;
        Ok(net)
    }

    fn build(&self) -> Result<(), String> {
        let hub = self.hub.as_str();
        ip(&["netns", "add", hub])?;
        ip(&["-n", hub, "link", "set", "lo", "up"])?;
        ip(&["-n", hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", hub, "addr", "add", &self.cidr(254), "dev", "br0"])?;
        ip(&["-n", hub, "link", "set", "br0", "up"])?;
        for (i, ns) in self.nodes.iter().enumerate() {
            let port = format!("p{i}");
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ])?;
            ip(&["-n", hub, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &self.cidr(11 + i as u8),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        let root = self.root_link.as_str();
        ip(&[
            "link", "add", root, "type", "veth", "peer", "name", "up0", "netns", hub,
        ])?;
        ip(&["-n", hub, "link", "set", "up0", "master", "br0", "up"])?;
        ip(&["addr", "add", &self.cidr(1), "dev", root])?;
        ip(&["link", "set", root, "up"])?;
        Ok(())
    }

    fn cidr(&self, host: u8) -> String {
        format!("{}/24", self.ip(host))
    }

    fn ip(&self, host: u8) -> String {
        format!("10.77.{}.{host}", self.subnet)
    }

    /// The namespace of node `i`.
    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// The address of node `i` (inside its namespace, reachable from the test).
    pub fn node_ip(&self, i: usize) -> String {
        self.ip(11 + i as u8)
    }

    /// The hub's address, where the relays listen.
    pub fn hub_ip(&self) -> String {
        self.ip(254)
    }

    /// `program args...` to run inside namespace `ns`.
    pub fn command_in(&self, ns: &str, program: &Path) -> Command {
        let mut cmd = Command::new(ip_bin());
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Delays every packet a node sends `delay_ms` ± `jitter_ms` and loses a
    /// `loss` share of them: by `tc netem` on each node's `eth0` where the
    /// kernel has netem, else by a `veto-relay` in front of each node in the
    /// hub (the same faults, in user space).
    pub fn impair(&self, delay_ms: u64, jitter_ms: u64, loss: f64, seed: u64) -> Links {
        let netem = format!("delay {delay_ms}ms {jitter_ms}ms loss {}%", loss * 100.0);
        match self.netem(0, &netem) {
            Ok(()) => {
                for i in 1..self.nodes.len() {
                    self.netem(i, &netem)
                        .unwrap_or_else(|e| panic!("netem on node 0 but not on {i}: {e}"));
                }
                eprintln!("netns: link faults by tc netem ({netem})");
                Links::Netem
            }
            Err(e) => {
                eprintln!("netns: link faults by veto-relay, as tc netem failed: {e}");
                let (delay, jitter, loss) = (
                    delay_ms.to_string(),
                    jitter_ms.to_string(),
                    loss.to_string(),
                );
                let flags = ["--delay", &delay, "--jitter", &jitter, "--loss", &loss];
                Links::Relays(
                    (0..self.nodes.len())
                        .map(|i| self.relay_to(i, &flags, seed + i as u64))
                        .collect(),
                )
            }
        }
    }

    /// Adds `tc qdisc ... netem SPEC` on node `i`'s `eth0`, or says why not.
    fn netem(&self, i: usize, spec: &str) -> Result<(), String> {
        let tc = find_executable("tc").ok_or("no tc (iproute2) found")?;
        let mut cmd = self.command_in(&self.nodes[i], &tc);
        cmd.args(["qdisc", "add", "dev", "eth0", "root", "netem"])
            .args(spec.split_whitespace());
        let out = cmd.output().map_err(|e| format!("tc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tc qdisc add ... netem {spec}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `tc -s qdisc show dev eth0` in node `i`'s namespace.
    fn qdisc_stats(&self, i: usize) -> String {
        let tc = find_executable("tc").expect("tc (iproute2) is installed");
        let out = self
            .command_in(&self.nodes[i], &tc)
            .args(["-s", "qdisc", "show", "dev", "eth0"])
            .output()
            .expect("run tc in a node's namespace");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a relay in the hub to node `i`'s gossip port, with these faults
    /// (`veto-relay` flags, e.g. `--delay 50 --jitter 5 --loss 0.02`).
    pub fn relay_to(&self, i: usize, faults: &[&str], seed: u64) -> NetRelay {
        let listen = RELAY_PORT + i as u16;
        let control = CONTROL_PORT + i as u16;
        let hub_ip = self.hub_ip();
        let child = self
            .command_in(&self.hub, Path::new(env!("CARGO_BIN_EXE_veto-relay")))
            .args(["--listen", &format!("{hub_ip}:{listen}")])
            .args(["--to", &format!("{}:{GOSSIP_PORT}", self.node_ip(i))])
            .args(["--control", &format!("{hub_ip}:{control}")])
            .args(["--seed", &seed.to_string()])
            .args(faults)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn veto-relay in the hub namespace");
        let relay = NetRelay {
            child,
            listen: format!("{hub_ip}:{listen}"),
            control: format!("{hub_ip}:{control}"),
        };
        eventually(Duration::from_secs(10), "relay control port", || {
            std::net::TcpStream::connect(&relay.control).is_ok()
        });
        relay
    }

    /// Starts node `i` named `name` in its namespace on `data_dir`, with its
    /// certificate from `certs` and `peers` (gossip addresses) as peers, and
    /// waits until it is ready.
    pub fn start_node(
        &self,
        i: usize,
        name: &str,
        certs: &Path,
        data_dir: &Path,
        peers: &[String],
    ) -> Veto {
        let node_ip = self.node_ip(i);
        let mut tls = tls_args(certs, name, GOSSIP_PORT, &format!("region-{name}"));
        // tls_args listens on loopback; a node here listens on its own address.
        let at = tls
            .iter()
            .position(|a| a == "--gossip-listen")
            .expect("tls_args sets --gossip-listen");
        tls[at + 1] = format!("{node_ip}:{GOSSIP_PORT}");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("{node_ip}:{HTTP_PORT}"),
        ];
        args.extend(tls);
        for peer in peers {
            args.extend(["--peer".to_owned(), peer.clone()]);
        }
        let mut veto = Veto {
            child: self.spawn_veto(i, &args),
            url: format!("http://{node_ip}:{HTTP_PORT}"),
            data_dir: data_dir.to_path_buf(),
            // No proxy from the environment: the addresses are private.
            http: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("build an HTTP client"),
            args,
            env: Vec::new(),
        };
        veto.wait_ready(Duration::from_secs(30));
        veto
    }

    /// Restarts node `i` (after a kill) in its namespace with the same flags
    /// and data dir, and waits until it is ready.
    pub fn restart_node(&self, i: usize, veto: &mut Veto) {
        let _ = veto.child.kill();
        let _ = veto.child.wait();
        veto.child = self.spawn_veto(i, &veto.args);
        veto.wait_ready(Duration::from_secs(30));
    }

    fn spawn_veto(&self, i: usize, args: &[String]) -> Child {
        // `ip netns exec` execs the program, so the child's pid is veto's own
        // and a kill reaches veto itself.
        self.command_in(&self.nodes[i], Path::new(veto_bin()))
            .args(args)
            .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("VETO_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn veto in its namespace")
    }

    /// Cuts node `i` off: nftables in its namespace drops every UDP packet
    /// in or out of `eth0` (its gossip, whoever dialled), and counts them.
    /// TCP, so the test's HTTP requests, still passes.
    pub fn isolate(&self, i: usize) {
        let rules = format!(
            "table inet {PARTITION_TABLE} {{\n\
               chain input {{ type filter hook input priority 0; policy accept;\n\
                 iifname \"eth0\" meta l4proto udp counter drop\n }}\n\
               chain output {{ type filter hook output priority 0; policy accept;\n\
                 oifname \"eth0\" meta l4proto udp counter drop\n }}\n\
             }}\n"
        );
        self.nft(i, &["-f", "-"], Some(&rules));
    }

    /// Undoes [`Net::isolate`].
    pub fn heal(&self, i: usize) {
        self.nft(i, &["delete", "table", "inet", PARTITION_TABLE], None);
    }

    /// UDP packets the partition of node `i` dropped so far, both ways.
    pub fn dropped(&self, i: usize) -> u64 {
        let out = self.nft(i, &["list", "table", "inet", PARTITION_TABLE], None);
        // Each rule reads `... counter packets N bytes M drop`.
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "packets")
            .map(|w| w[1].parse::<u64>().expect("an nft packet count"))
            .sum()
    }

    /// Runs `nft args` in node `i`'s namespace, with `stdin` if given;
    /// returns its output, and panics with nft's error when it fails.
    fn nft(&self, i: usize, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write as _;
        let nft = find_executable("nft").expect("nft (nftables) is installed");
        let mut child = self
            .command_in(&self.nodes[i], &nft)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft in a node's namespace");
        let mut input = child.stdin.take().expect("nft's stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write nft's rules");
        drop(input);
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft {args:?} in {}: {}",
            self.nodes[i],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Whatever a test left running in the namespaces is its own (the
        // names are this run's); a namespace lasts until its last process ends.
        for ns in self.nodes.iter().chain([&self.hub]) {
            if let Ok(out) = run(&ip_bin(), &["netns", "pids", ns]) {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        // Deleting a namespace deletes the veth ends in it, and so their peers.
        let _ = ip(&["link", "del", &self.root_link]);
        for ns in self.nodes.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// How [`Net::impair`] put the faults on the links.
pub enum Links {
    /// `netem` on every node's interface: peers dial each other directly.
    Netem,
    /// A relay in front of each node (by index): peers dial the relays.
    Relays(Vec<NetRelay>),
}

impl Links {
    /// The gossip address node `i`'s peers dial.
    pub fn peer_addr(&self, net: &Net, i: usize) -> String {
        match self {
            Links::Netem => format!("{}:{GOSSIP_PORT}", net.node_ip(i)),
            Links::Relays(relays) => relays[i].listen.clone(),
        }
    }

    /// Asserts the faults were in the path: every node's packets were
    /// delayed, and some were lost. Returns how many were lost.
    pub fn assert_in_path(&self, net: &Net) -> u64 {
        let lost = match self {
            Links::Netem => (0..net.nodes.len())
                .map(|i| {
                    // `Sent N bytes M pkt (dropped D, overlimits ...`
                    let stats = net.qdisc_stats(i);
                    let number = |after: &str| -> u64 {
                        let at = stats.find(after).unwrap_or_else(|| {
                            panic!("no {after:?} in node {i}'s qdisc stats: {stats}")
                        });
                        stats[at + after.len()..]
                            .trim_start()
                            .split(|c: char| !c.is_ascii_digit())
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| panic!("node {i}'s qdisc stats: {stats}"))
                    };
                    assert!(number("Sent") > 0, "netem on node {i} sent nothing");
                    number("dropped")
                })
                .sum(),
            Links::Relays(relays) => relays
                .iter()
                .enumerate()
                .map(|(i, relay)| {
                    assert!(
                        relay.stat("delayed") > 0,
                        "the relay to {i} delayed nothing"
                    );
                    relay.stat("dropped_loss")
                })
                .sum(),
        };
        // Hundreds of packets at 2% each: none lost means no loss at all.
        assert!(lost > 0, "the links lost no packets");
        lost
    }
}

/// A `veto-relay` in the hub namespace in front of one node's gossip port.
pub struct NetRelay {
    pub child: Child,
    /// Where peers dial to reach the node through the relay.
    pub listen: String,
    control: String,
}

impl NetRelay {
    /// Sends one control command (`stats`, `loss 0.1`, ...); returns the reply.
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead as _, BufReader, Write as _};
        let mut stream =
            std::net::TcpStream::connect(&self.control).expect("connect to the relay's control");
        writeln!(stream, "{line}").expect("send a relay command");
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .expect("read the relay's reply");
        assert!(reply.starts_with("ok"), "relay {line:?}: {reply}");
        reply
    }

    /// One counter of the `stats` reply (`delayed`, `dropped_loss`, ...).
    pub fn stat(&self, name: &str) -> u64 {
        let reply = self.command("stats");
        let prefix = format!("{name}=");
        reply
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in relay stats: {reply}"))
            .parse()
            .expect("a relay counter")
    }
}

impl Drop for NetRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints why the test is skipped and returns `None`, or panics when
/// `VETO_REQUIRE_GATEWAYS=1` says it must run.
fn skip<T>(msg: &str) -> Option<T> {
    assert!(!gateways_required(), "VETO_REQUIRE_GATEWAYS=1 and {msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `ip`, found in the sbin directories too (a PATH may lack them).
fn ip_bin() -> PathBuf {
    find_executable("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

fn run(program: &Path, args: &[&str]) -> Result<Output, String> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))
}

/// Runs `ip args`, or says how it failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = run(&ip_bin(), args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A subnet 10.77.S.0/24 that no other run holds and no interface of the
/// root namespace uses, with the lock that keeps it this run's: a flock on a
/// file per subnet, which the kernel releases when the process dies, so a
/// crashed run blocks no one (and what it left behind shows as in use).
fn claim_subnet() -> Result<(u8, File), String> {
    use std::os::fd::AsRawFd as _;
    let dir = std::env::temp_dir().join("veto-netns");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let used = run(&ip_bin(), &["-o", "-4", "addr", "show"])?;
    let routes = run(&ip_bin(), &["-4", "route", "show"])?;
    let taken = String::from_utf8_lossy(&used.stdout).into_owned()
        + &String::from_utf8_lossy(&routes.stdout);
    let start = std::process::id() as usize;
    for k in 0..255 {
        let subnet = ((start + k) % 255) as u8;
        let path = dir.join(format!("10.77.{subnet}.lock"));
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked && !taken.contains(&format!("10.77.{subnet}.")) {
            return Ok((subnet, file));
        }
    }
    Err("every subnet 10.77.S.0/24 is in use".into())
}
