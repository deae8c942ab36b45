//! The demo server: the other end of the line protocol, on loopback, with a switch to
//! "restart" it (drop every socket, refuse connections for a while) and counters of the
//! sockets it sees, so the demo can show that the pool never exceeds `max_size`.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The demo server: a line protocol on loopback, one thread per connection, with a
/// registry of live sockets so it can count them and drop them all (a "restart").
#[derive(Clone)]
pub struct DemoServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

#[derive(Default)]
struct ServerState {
    /// Live server-side sockets by id (clones, so they can be shut down from outside).
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    peak: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// While set and in the future, new connections are closed at once (no greeting).
    down_until: Mutex<Option<Instant>>,
    /// Down until healed (the dashboard's switch). Relaxed: a flag read once per accept;
    /// nothing else is published with it.
    broken: AtomicBool,
}

impl ServerState {
    /// The live sockets, locked.
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        // A panicking handler thread must not take the demo down with it.
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Whether the server is "restarting" (refusing connections) right now.
    fn is_down(&self) -> bool {
        if self.broken.load(Relaxed) {
            return true;
        }
        let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*down, Some(t) if Instant::now() < t)
    }
}

impl DemoServer {
    /// Binds an ephemeral port on 127.0.0.1 and starts accepting on a detached thread.
    pub fn start() -> io::Result<DemoServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState::default());
        let accept_state = state.clone();
        // Detached: it ends with the process.
        thread::Builder::new()
            .name("demo-server".into())
            .spawn(move || accept_loop(listener, accept_state))?;
        Ok(DemoServer { addr, state })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sockets the server has open right now.
    pub fn live_sockets(&self) -> usize {
        self.state.sockets().len()
    }

    /// The most sockets it ever had open at once.
    pub fn peak_sockets(&self) -> usize {
        self.state.peak.load(Relaxed)
    }

    /// Connections accepted and greeted.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Relaxed)
    }

    /// Connections closed at once because the server was down.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Relaxed)
    }

    /// Shuts every live socket down (the clients see EOF or a reset) and refuses new
    /// connections for `downtime`. Returns how many sockets were dropped.
    pub fn drop_all_sockets(&self, downtime: Duration) -> usize {
        if !downtime.is_zero() {
            *self
                .state
                .down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + downtime);
        }
        let victims: Vec<TcpStream> = self.state.sockets().drain().map(|(_, s)| s).collect();
        for socket in &victims {
            let _ = socket.shutdown(Shutdown::Both);
        }
        victims.len()
    }

    /// Breaks the server until [`heal`](Self::heal): drops every socket and refuses new
    /// connections. Returns how many sockets were dropped. (The dashboard's switch.)
    #[allow(dead_code)] // the demo restarts with a downtime instead
    pub fn break_down(&self) -> usize {
        self.state.broken.store(true, Relaxed);
        self.drop_all_sockets(Duration::ZERO)
    }

    /// Accepts connections again (after [`break_down`](Self::break_down) or a restart's
    /// downtime).
    #[allow(dead_code)] // the demo's restart heals by itself
    pub fn heal(&self) {
        self.state.broken.store(false, Relaxed);
        *self
            .state
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether it accepts connections right now.
    #[allow(dead_code)] // shown by the dashboard only
    pub fn is_up(&self) -> bool {
        !self.state.is_down()
    }
}

/// The accept thread: refuses while down, otherwise registers the socket and serves it
/// on a thread of its own.
fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if state.is_down() {
            state.refused.fetch_add(1, Relaxed);
            continue; // dropped: the client's handshake sees EOF
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = state.next_id.fetch_add(1, Relaxed);
        {
            let mut sockets = state.sockets();
            sockets.insert(id, handle);
            state.peak.fetch_max(sockets.len(), Relaxed);
        }
        state.accepted.fetch_add(1, Relaxed);
        let conn_state = state.clone();
        let spawned = thread::Builder::new()
            .name(format!("demo-server-{id}"))
            .spawn(move || {
                let _ = serve(&conn_state, id, stream);
                conn_state.sockets().remove(&id);
            });
        if spawned.is_err() {
            state.sockets().remove(&id);
        }
    }
}

/// One client connection: greet, then answer lines until EOF, `QUIT` or an error.
fn serve(state: &ServerState, id: u64, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("HELLO demo-server connection {id}\n").as_bytes())?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed
        }
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("PING"), None) => "PONG",
            (Some("WORK"), Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) => {
                    thread::sleep(Duration::from_millis(ms.min(5_000)));
                    "DONE"
                }
                Err(_) => "ERR bad number",
            },
            (Some("QUIT"), None) => {
                // Forget the socket before answering, so that once the client has its
                // BYE the count is already down.
                state.sockets().remove(&id);
                writer.write_all(b"BYE\n")?;
                return Ok(());
            }
            _ => "ERR unknown command",
        };
        writer.write_all(format!("{reply}\n").as_bytes())?;
    }
}
