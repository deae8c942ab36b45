//! A throw-away six-node Redis Cluster (three masters, one replica each) on loopback.
//!
//! [`TestCluster::start`] runs six `redis-server` processes with `cluster-enabled yes`,
//! each in its own temporary directory, joins them with `redis-cli --cluster create
//! --cluster-replicas 1`, and waits until every node reports `cluster_state:ok` and every
//! replica is in sync. Dropping the [`TestCluster`] (also while a failing test unwinds)
//! kills every process and removes the directories.
//!
//! Ports: `POOL_TEST_CLUSTER_PORT_BASE` (default 7000) to base + 5, plus the cluster bus
//! ports (base + 10000 ...). When one of them is taken, the next base (+100) is tried.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// `cluster-node-timeout` of the test clusters, in milliseconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

const NODES: u16 = 6;

/// Held by every test that starts a cluster: one cluster at a time per test binary.
pub fn cluster_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `redis-server` and `redis-cli` can be run. Otherwise prints a loud skip banner
/// (straight to stderr, past the harness's capture) and returns false, or panics when
/// `POOL_TEST_REQUIRE_SERVICES=1`.
pub fn cluster_binaries_or_skip(test: &str) -> bool {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = ["redis-server", "redis-cli"]
        .into_iter()
        .filter(|b| !runs(b))
        .collect();
    if missing.is_empty() {
        return true;
    }
    test_support::skip(
        test,
        &format!("{} not found on PATH", missing.join(" and ")),
        "install redis-server / redis-tools",
    );
    false
}

struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running cluster; dropping it kills every node.
pub struct TestCluster {
    nodes: Vec<Node>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub flags: String,
    pub master_id: Option<String>,
    /// Slot ranges, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl NodeInfo {
    pub fn is_master(&self) -> bool {
        self.flags.split(',').any(|f| f == "master")
    }
    pub fn is_failed(&self) -> bool {
        self.flags.split(',').any(|f| f == "fail" || f == "fail?")
    }
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

impl TestCluster {
    /// Starts a cluster; panics (after cleaning up) when it cannot.
    pub fn start() -> TestCluster {
        let first: u16 = std::env::var("POOL_TEST_CLUSTER_PORT_BASE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7000);
        let mut last_err = String::new();
        for attempt in 0..20u16 {
            let base = first.wrapping_add(attempt * 100);
            if !(1024..=55000).contains(&base) || !ports_free(base) {
                continue;
            }
            match TestCluster::start_at(base) {
                Ok(c) => return c,
                Err(e) => last_err = format!("base port {base}: {e}"),
            }
        }
        panic!("could not start a test cluster: {last_err}");
    }

    fn start_at(base: u16) -> Result<TestCluster, String> {
        let mut cluster = TestCluster { nodes: Vec::new() };
        for i in 0..NODES {
            let port = base + i;
            let dir = std::env::temp_dir().join(format!(
                "pool-redis-cluster-{}-{port}-{}",
                std::process::id(),
                nanos()
            ));
            std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                // Replicas sync at once instead of after the default 5 s delay.
                .args(["--repl-diskless-sync-delay", "0"])
                .args(["--protected-mode", "no"])
                .args(["--daemonize", "no"])
                .args(["--logfile", "redis.log"])
                .arg("--dir")
                .arg(&dir)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => Some(c),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(format!("redis-server: {e}"));
                }
            };
            cluster.nodes.push(Node { port, dir, child });
        }
        for node in &mut cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if ping(node.port) {
                    break;
                }
                if let Some(child) = &mut node.child {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!(
                            "redis-server on port {} exited: {status}",
                            node.port
                        ));
                    }
                }
                if Instant::now() > deadline {
                    return Err(format!("redis-server on port {} did not answer", node.port));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.wait_healthy(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Waits until every live node says `cluster_state:ok`, knows every other node, and
    /// every replica's link to its master is up.
    pub fn wait_healthy(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut why = String::new();
        while Instant::now() < deadline {
            match self.check_healthy() {
                Ok(()) => return Ok(()),
                Err(e) => why = e,
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the cluster did not become healthy: {why}"))
    }

    fn check_healthy(&self) -> Result<(), String> {
        for port in self.live_ports() {
            let mut conn = node_admin(port).map_err(|e| format!("{port}: {e}"))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .map_err(|e| format!("{port}: {e}"))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{port}: cluster_state is not ok"));
            }
            let known = info_field(&info, "cluster_known_nodes");
            if known != NODES.to_string() {
                return Err(format!("{port}: knows {known} nodes"));
            }
            // Every node sees the final topology: three masters with slots, each with one
            // replica (right after `--cluster create`, replicas can still look like
            // masters without slots to some nodes).
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .map_err(|e| format!("{port}: {e}"))?;
            let view: Vec<NodeInfo> = text.lines().filter_map(parse_node_line).collect();
            let masters: Vec<&NodeInfo> = view
                .iter()
                .filter(|n| n.is_master() && !n.slots.is_empty())
                .collect();
            let replicas = view
                .iter()
                .filter(|n| {
                    !n.is_master()
                        && masters
                            .iter()
                            .any(|m| n.master_id.as_deref() == Some(m.id.as_str()))
                })
                .count();
            if masters.len() != 3 || replicas != 3 {
                return Err(format!(
                    "{port}: sees {} masters with slots and {replicas} replicas",
                    masters.len()
                ));
            }
            let repl: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .map_err(|e| format!("{port}: {e}"))?;
            if info_field(&repl, "role") == "slave"
                && info_field(&repl, "master_link_status") != "up"
            {
                return Err(format!("{port}: replica link is not up"));
            }
        }
        Ok(())
    }

    /// `redis://127.0.0.1:<port>` for every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `CLUSTER NODES` as seen by the node on `port`.
    pub fn nodes_seen_by(&self, port: u16) -> Result<Vec<NodeInfo>, String> {
        let mut conn = node_admin(port).map_err(|e| e.to_string())?;
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        Ok(text.lines().filter_map(parse_node_line).collect())
    }

    /// The topology as seen by the first live node.
    pub fn topology(&self) -> Vec<NodeInfo> {
        for port in self.live_ports() {
            if let Ok(nodes) = self.nodes_seen_by(port) {
                return nodes;
            }
        }
        panic!("no live node answered CLUSTER NODES");
    }

    /// The master that owns `slot`, and its replica (by port).
    pub fn master_and_replica_of(&self, slot: u16) -> (NodeInfo, NodeInfo) {
        let topo = self.topology();
        let master = topo
            .iter()
            .find(|n| n.is_master() && !n.is_failed() && n.owns(slot))
            .cloned()
            .expect("a master for the slot");
        let replica = topo
            .iter()
            .find(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .cloned()
            .expect("a replica of the master");
        (master, replica)
    }

    /// The slot of `key` (asked from a live node).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let mut conn = node_admin(port).expect("admin connection");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT")
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&node.dir);
        }
    }
}

/// A plain admin connection to one node (2 s timeouts).
pub fn node_admin(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(conn)
}

/// Normal client connections on a node (not replication links), not counting `admin`.
pub fn client_count(admin: &mut redis::Connection) -> usize {
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(admin)
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query(admin)
        .expect("CLIENT LIST");
    let me = format!("id={me} ");
    list.lines().filter(|l| !l.starts_with(&me)).count()
}

fn ping(port: u16) -> bool {
    node_admin(port)
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn ports_free(base: u16) -> bool {
    (0..NODES).all(|i| {
        let port = base + i;
        TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
    })
}

fn info_field(info: &str, key: &str) -> String {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or("")
        .to_owned()
}

fn parse_node_line(line: &str) -> Option<NodeInfo> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    // 127.0.0.1:7000@17000[,hostname]
    let addr = fields[1].split(['@', ',']).next()?;
    let port = addr.rsplit(':').next()?.parse().ok()?;
    let master_id = (fields[3] != "-").then(|| fields[3].to_owned());
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = s.parse().ok()?;
                Some((n, n))
            }
        })
        .collect();
    Some(NodeInfo {
        id: fields[0].to_owned(),
        port,
        flags: fields[2].to_owned(),
        master_id,
        slots,
    })
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
