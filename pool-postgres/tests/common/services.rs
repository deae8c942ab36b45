//! Throwaway services for the PgBouncer, failover and authentication tests: temp dirs owned
//! by `postgres`, a PgBouncer in front of the shared server, and PostgreSQL clusters of our
//! own (a primary, with the default or a given `pg_hba.conf`, and a streaming standby).
//! Every one is stopped and its directory removed by a Drop guard, on success and on failure
//! alike.
//!
//! The shared server on 5432 is never stopped, restarted or reconfigured here.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Skips the test loudly (stderr banner past the harness's capture), or fails it when
/// `POOL_TEST_REQUIRE_SERVICES=1`.
pub fn skip(test: &str, why: &str) {
    test_support::skip(test, why, "");
}

/// The effective uid of this process (from /proc, no libc needed).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The uid and gid of user `postgres`, from /etc/passwd.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut f = line.split(':');
    let uid = f.nth(2)?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    Some((uid, gid))
}

/// Who runs the services: as root, user `postgres` (PostgreSQL and PgBouncer refuse root);
/// otherwise ourselves. `Err` says why neither works.
pub fn service_user() -> Result<Option<(u32, u32)>, String> {
    match euid() {
        Some(0) => postgres_ids()
            .map(Some)
            .ok_or_else(|| "running as root but there is no `postgres` user".to_owned()),
        _ => Ok(None),
    }
}

/// A command that runs as the service user.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Ok(Some((uid, gid))) = service_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd.env("LC_ALL", "C").stdin(Stdio::null());
    cmd
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory under the system temp dir, owned by the service user, mode 0700; removed
/// on drop.
pub struct TempDir {
    dir: test_support::TempDir,
}

impl TempDir {
    /// Makes one named after `prefix`, this process and a counter.
    pub fn new(prefix: &str) -> TempDir {
        let dir = test_support::TempDir::new(&format!("pool-postgres-{prefix}"));
        let path = dir.path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Ok(Some((uid, gid))) = service_user() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
        TempDir { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in it (owned by the service user).
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, contents).unwrap();
        if let Ok(Some((uid, gid))) = service_user() {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
        p
    }
}

/// `preferred` if nothing listens there and we can bind it, else a free port.
pub fn free_port(preferred: u16) -> u16 {
    if TcpStream::connect_timeout(
        &([127, 0, 0, 1], preferred).into(),
        Duration::from_millis(200),
    )
    .is_err()
        && TcpListener::bind(("127.0.0.1", preferred)).is_ok()
    {
        return preferred;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// PgBouncer
// ---------------------------------------------------------------------------------------

/// The pgbouncer binary: `POOL_TEST_PGBOUNCER`, else `pgbouncer` on PATH, else Debian's
/// `/usr/sbin/pgbouncer`.
pub fn pgbouncer_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("POOL_TEST_PGBOUNCER") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// A PgBouncer of our own on 127.0.0.1 in front of the shared server (127.0.0.1:5432,
/// database `test`), stopped on drop. Two databases share its port:
///
/// * `test_tx`: `pool_mode=transaction`
/// * `test_session`: `pool_mode=session`
///
/// `default_pool_size` 2 (server connections per database and user), `auth_type trust`,
/// and `server_reset_query_always = 1` with `DISCARD ALL`: every server connection is
/// reset whenever PgBouncer takes it back, in transaction mode too, so session state that
/// leaks across transactions is gone every time instead of only under contention.
pub struct PgBouncer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    dir: TempDir,
}

/// PgBouncer's server pool size per database and user in these tests.
pub const PGBOUNCER_POOL_SIZE: usize = 2;

impl PgBouncer {
    /// Starts one (`Ok(None)`: no pgbouncer binary; the caller skips).
    pub fn start() -> Result<Option<PgBouncer>, String> {
        let Some(bin) = pgbouncer_binary() else {
            return Ok(None);
        };
        service_user()?;
        let dir = TempDir::new("pgbouncer");
        let port = free_port(6432);
        let d = dir.path().display();
        dir.write("userlist.txt", "\"postgres\" \"\"\n\"root\" \"\"\n");
        let ini = format!(
            "[databases]\n\
             test_tx = host=127.0.0.1 port=5432 dbname=test pool_mode=transaction\n\
             test_session = host=127.0.0.1 port=5432 dbname=test pool_mode=session\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir = {d}\n\
             auth_type = trust\n\
             auth_file = {d}/userlist.txt\n\
             admin_users = postgres\n\
             pool_mode = session\n\
             default_pool_size = {PGBOUNCER_POOL_SIZE}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 200\n\
             server_reset_query = DISCARD ALL\n\
             server_reset_query_always = 1\n\
             ignore_startup_parameters = extra_float_digits\n\
             query_wait_timeout = 20\n\
             logfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n"
        );
        let ini_path = dir.write("pgbouncer.ini", &ini);
        let child = command(&bin)
            .arg(&ini_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut bouncer = PgBouncer { child, port, dir };
        let url = bouncer.url("test_session");
        let up = wait_until(Duration::from_secs(10), || {
            if let Ok(Some(_)) = bouncer.child.try_wait() {
                return true;
            }
            postgres::Client::connect(&url, postgres::NoTls)
                .and_then(|mut c| c.simple_query("SELECT 1"))
                .is_ok()
        });
        if !up || bouncer.child.try_wait().ok().flatten().is_some() {
            return Err(format!(
                "pgbouncer did not come up on port {port}; its log:\n{}",
                bouncer.log()
            ));
        }
        Ok(Some(bouncer))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// A connection to its admin console (`SHOW POOLS`, `SHOW STATS`; simple queries only).
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("pgbouncer"), postgres::NoTls)
            .expect("pgbouncer admin console")
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL clusters of our own
// ---------------------------------------------------------------------------------------

/// The directory with `initdb`, `pg_ctl`, `pg_basebackup`: `POOL_TEST_PG_BINDIR`, else the
/// newest `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on PATH.
pub fn pg_bindir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("POOL_TEST_PG_BINDIR") {
        let p = PathBuf::from(p);
        return p.join("initdb").is_file().then_some(p);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

/// A PostgreSQL cluster of our own on 127.0.0.1:`port` (by default trust for everything,
/// replication included; see [`Cluster::primary_with`] for other `pg_hba.conf`s), stopped
/// with `pg_ctl stop -m immediate` and its directory removed on drop, or by a watcher
/// process if this process dies first (see `spawn_watcher`).
pub struct Cluster {
    bindir: PathBuf,
    dir: TempDir,
    /// The port it listens on.
    pub port: u16,
    stopped: bool,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn settings(port: u16, socket_dir: &Path) -> String {
        format!(
            "\n# pool-postgres test cluster\n\
             port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = replica\n\
             max_wal_senders = 5\n\
             hot_standby = on\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 40\n\
             wal_keep_size = 64MB\n\
             logging_collector = off\n",
            socket_dir.display()
        )
    }

    /// A new primary: `initdb` (user `postgres`, trust), then started.
    pub fn primary(bindir: &Path, preferred_port: u16) -> Cluster {
        Self::primary_with(
            bindir,
            preferred_port,
            "local all all trust\n\
             host all all 127.0.0.1/32 trust\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n",
            "",
        )
    }

    /// A new primary with the given `pg_hba.conf` and extra `postgresql.conf` lines
    /// (appended after the test settings, so they win): `initdb` (user `postgres`), then
    /// started. Keep `local all all trust` in `hba` if [`socket_client`](Self::socket_client)
    /// is to work.
    pub fn primary_with(
        bindir: &Path,
        preferred_port: u16,
        hba: &str,
        extra_conf: &str,
    ) -> Cluster {
        let dir = TempDir::new("primary");
        let port = free_port(preferred_port);
        let mut c = Cluster {
            bindir: bindir.to_owned(),
            dir,
            port,
            stopped: true,
        }
        .watched();
        run(command(bindir.join("initdb"))
            .arg("-D")
            .arg(c.data())
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]));
        let conf = c.data().join("postgresql.conf");
        let mut s = std::fs::read_to_string(&conf).unwrap();
        s.push_str(&Self::settings(port, c.dir.path()));
        s.push_str(extra_conf);
        s.push('\n');
        std::fs::write(&conf, s).unwrap();
        std::fs::write(c.data().join("pg_hba.conf"), hba).unwrap();
        c.start();
        c
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    pub fn standby_of(primary: &Cluster, preferred_port: u16) -> Cluster {
        let dir = TempDir::new("standby");
        let port = free_port(preferred_port);
        let mut c = Cluster {
            bindir: primary.bindir.clone(),
            dir,
            port,
            stopped: true,
        }
        .watched();
        run(command(c.bindir.join("pg_basebackup"))
            .arg("-D")
            .arg(c.data())
            .args(["-h", "127.0.0.1", "-U", "postgres", "-R", "-X", "stream"])
            .args(["-p", &primary.port.to_string(), "--no-sync"]));
        // The copied postgresql.conf says the primary's port and socket dir: override.
        let conf = c.data().join("postgresql.conf");
        let mut s = std::fs::read_to_string(&conf).unwrap();
        s.push_str(&Self::settings(port, c.dir.path()));
        std::fs::write(&conf, s).unwrap();
        c.start();
        c
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        run(command(self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(args))
    }

    /// `pg_ctl start -w`.
    pub fn start(&mut self) {
        let log = self.dir.path().join("server.log");
        self.stopped = false;
        let log_s = log.display().to_string();
        self.pg_ctl(&["-w", "-t", "30", "-l", &log_s, "start"]);
    }

    /// `pg_ctl stop -m fast -w`.
    pub fn stop(&mut self) {
        self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "stop"]);
        self.stopped = true;
    }

    /// `pg_ctl promote -w`: a standby becomes a primary.
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "30", "promote"]);
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A plain client.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("cluster connection")
    }

    /// A client as `postgres` over the cluster's Unix socket (not TCP: for clusters whose
    /// `pg_hba.conf` trusts only local connections).
    pub fn socket_client(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                self.dir.path().display(),
                self.port
            ),
            postgres::NoTls,
        )
        .expect("cluster connection over the Unix socket")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Keeps the cluster for the rest of this process, for a fixture that the tests of one
    /// binary share through a `static` (whose `Drop` never runs): a watcher (see
    /// `spawn_watcher`) stops the cluster and removes its directory and `dirs` once
    /// this process ends, however it ends.
    pub fn keep_until_exit(self, dirs: Vec<TempDir>) -> &'static Cluster {
        if let Err(e) = self.spawn_watcher(&dirs) {
            // Without a watcher, stop and remove everything now rather than leak it.
            drop(dirs);
            drop(self);
            panic!("cannot start the watcher that stops the shared cluster: {e}");
        }
        // The watcher removes them once the process is gone.
        std::mem::forget(dirs);
        Box::leak(Box::new(self))
    }

    /// Starts the watcher that makes sure the cluster goes away even if this process dies
    /// before its `Drop` runs (a panic that aborts, a `kill`, a Ctrl-C), from the moment
    /// its directory exists (before `initdb` or `pg_basebackup`). Panics if it cannot.
    fn watched(self) -> Cluster {
        if let Err(e) = self.spawn_watcher(&[]) {
            drop(self);
            panic!("cannot start the watcher that stops the cluster: {e}");
        }
        self
    }

    /// A watcher (`sh`, as the service user, in a process group of its own so that a
    /// Ctrl-C spares it) waits for this process to end, then stops the cluster
    /// (`pg_ctl stop -m immediate`, twice, 2 s apart: a `pg_ctl start` this process left
    /// running may start it in between) and removes its directory and `dirs`. After a
    /// normal `Drop` it finds nothing left to do. (A server that starts even later finds
    /// its lock file gone and shuts itself down within a minute.)
    fn spawn_watcher(&self, dirs: &[TempDir]) -> std::io::Result<()> {
        const WATCH: &str = "pid=$1; pg_ctl=$2; data=$3; shift 3; \
            while [ -d /proc/$pid ]; do sleep 1; done; \
            for i in 1 2; do \
              [ -d \"$data\" ] && \"$pg_ctl\" -D \"$data\" -w -t 30 -m immediate stop >/dev/null 2>&1; \
              sleep 2; \
            done; \
            rm -rf \"$@\"";
        let mut watcher = command("sh");
        watcher
            .args(["-c", WATCH, "sh", &std::process::id().to_string()])
            .arg(self.bindir.join("pg_ctl"))
            .arg(self.data())
            .arg(self.dir.path())
            .args(dirs.iter().map(|d| d.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        watcher.spawn().map(drop)
    }

    /// `pg_ctl stop -m immediate -w`: the server goes away at once, as if it crashed
    /// (clients see their sockets close; a standby restarts with crash recovery).
    pub fn stop_immediate(&mut self) {
        self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
        self.stopped = true;
    }

    /// Whether it was stopped by [`stop`](Self::stop) or [`stop_immediate`](Self::stop_immediate)
    /// (and not started again).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = command(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-t", "30", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
