//! A private `redis-server` for tests and benchmarks: a free port on 127.0.0.1, no
//! persistence, its own temp dir; killed and reaped when the guard drops. [`TestCluster`]: a
//! private Redis Cluster the same way (`redis-server --cluster-enabled yes` per node, then
//! `redis-cli --cluster create`), with or without replicas. Not used by the daemon itself
//! (that is `store::managed`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private redis-server.
pub struct TestRedis {
    child: Child,
    /// Its TCP port.
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TestRedis {
    /// Starts redis-server from `PATH` and waits until it answers.
    pub fn start() -> std::io::Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts redis-server on `port` (used to restart one on the same port).
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("skyline-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut r = TestRedis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = r.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "redis-server exited: {status}"
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = r.child.kill();
        Err(std::io::Error::other(
            "redis-server did not start within 10 s",
        ))
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server now (for outage tests); the port can be reused with [`Self::start_on`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node of a [`TestCluster`].
pub struct ClusterNode {
    child: Option<Child>,
    /// Its TCP port.
    pub port: u16,
    dir: PathBuf,
}

fn spawn_cluster_node(port: u16, dir: &std::path::Path) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl ClusterNode {
    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the node (for failover tests); a no-op when already killed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process runs (not [`Self::kill`]ed).
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Starts a killed node again on its port with its `nodes.conf` (empty data: no
    /// persistence): it rejoins the cluster, as a replica if it was failed over meanwhile.
    pub fn restart(&mut self) -> std::io::Result<()> {
        if self.child.is_none() {
            self.child = Some(spawn_cluster_node(self.port, &self.dir)?);
        }
        Ok(())
    }
}

/// A private Redis Cluster: `masters` masters, each with `replicas` replicas, all on
/// 127.0.0.1, no persistence, `cluster-node-timeout` 2 s. Killed and its dir removed on drop.
pub struct TestCluster {
    /// Every node, in the order `redis-cli --cluster create` was given them (masters first).
    pub nodes: Vec<ClusterNode>,
    /// How many of `nodes` were created as masters.
    pub masters: usize,
    dir: PathBuf,
}

fn cluster_info(port: u16) -> Option<String> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    redis::cmd("CLUSTER").arg("INFO").query(&mut c).ok()
}

impl TestCluster {
    /// Starts the servers, creates the cluster and waits until every node says
    /// `cluster_state:ok` (and, with replicas, every replica is attached to its master).
    /// Tried up to three times on fresh ports: a free port can be taken by a parallel test
    /// between `free_port` and redis-server binding it (or its cluster bus port, +10,000).
    pub fn start(masters: usize, replicas: usize) -> std::io::Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(masters, replicas) {
                Ok(cluster) => return Ok(cluster),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no attempt made")))
    }

    fn try_start(masters: usize, replicas: usize) -> std::io::Result<Self> {
        let n = masters * (1 + replicas);
        let base = std::env::temp_dir().join(format!(
            "skyline-cluster-{}-{}",
            std::process::id(),
            free_port()?
        ));
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            masters,
            dir: base.clone(),
        };
        for _ in 0..n {
            let port = free_port()?;
            let dir = base.join(port.to_string());
            std::fs::create_dir_all(&dir)?;
            let child = spawn_cluster_node(port, &dir)?;
            cluster.nodes.push(ClusterNode {
                child: Some(child),
                port,
                dir,
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &mut cluster.nodes {
            // A node whose port (or bus port) was taken exits: don't mistake whatever holds
            // the port for it.
            loop {
                if let Some(child) = node.child.as_mut() {
                    if child.try_wait()?.is_some() {
                        return Err(std::io::Error::other(format!(
                            "redis-server on {} exited at start (port taken?)",
                            node.port
                        )));
                    }
                }
                let fresh = cluster_info(node.port)
                    .is_some_and(|info| info.lines().any(|l| l.trim() == "cluster_known_nodes:1"));
                if fresh {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!(
                        "redis-server on {} did not start within 10 s",
                        node.port
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let info = cluster_info(node.port).unwrap_or_default();
                let known = info
                    .lines()
                    .find_map(|l| l.strip_prefix("cluster_known_nodes:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if info.contains("cluster_state:ok") && known == n {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!(
                        "node {} did not reach cluster_state:ok: {info}",
                        node.port
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if replicas > 0 {
            // Every replica synced with its master (so a failover has something to promote).
            for node in &cluster.nodes {
                loop {
                    let role = Self::info_of(node.port, "replication");
                    let master = role.contains("role:master");
                    if master
                        || (role.contains("master_link_status:up")
                            && role.contains("master_sync_in_progress:0"))
                    {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(std::io::Error::other(format!(
                            "replica {} did not sync: {role}",
                            node.port
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Ok(cluster)
    }

    /// The seed URLs (`[redis] cluster_urls`): every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(ClusterNode::url).collect()
    }

    /// `INFO <section>` of the node on `port` (empty when it does not answer).
    pub fn info_of(port: u16, section: &str) -> String {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .ok()
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)).ok())
            .and_then(|mut c| redis::cmd("INFO").arg(section).query(&mut c).ok())
            .unwrap_or_default()
    }

    /// The ports of the nodes that are masters now (`role:master`), alive ones only.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter(|n| Self::info_of(n.port, "replication").contains("role:master"))
            .map(|n| n.port)
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The sum of one `INFO` field (e.g. `used_memory`, `total_net_input_bytes`) over the servers
/// on `ports`; `None` when a server does not answer or lacks the field.
pub fn info_sum(ports: &[u16], section: &str, field: &str) -> Option<f64> {
    let prefix = format!("{field}:");
    let mut total = 0.0;
    for &port in ports {
        let info = TestCluster::info_of(port, section);
        let v: f64 = info
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))?
            .trim()
            .parse()
            .ok()?;
        total += v;
    }
    Some(total)
}
