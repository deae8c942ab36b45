//! The client side of the demo's line protocol, and the pool's backend for it.
//!
//! One line each way: `PING` → `PONG`, `WORK <ms>` → (the server sleeps) `DONE`,
//! `QUIT` → `BYE`. On connect the server greets with `HELLO ...`.
//!
//! [`LineFactory`] is the whole backend, about 30 lines of [`ConnectionFactory`]: `create`
//! connects with a timeout and reads the server's greeting, `validate` sends `PING` and
//! expects `PONG` within the validation timeout, and `is_broken` reports a connection on
//! which an I/O error was seen, so the pool discards it when it comes back instead of
//! handing it to the next caller.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pool_core::ConnectionFactory;

/// A connection to the demo server: a socket plus what we know about its health.
pub struct LineConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Set by any I/O or protocol error: the stream may be out of sync or dead.
    broken: bool,
}

impl LineConnection {
    /// Connects within `timeout`, reads the greeting, then sets the request timeouts.
    fn open(addr: SocketAddr, timeout: Duration, io_timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut conn = LineConnection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            broken: false,
        };
        // The handshake must also finish within the connect timeout.
        conn.set_timeouts(timeout)?;
        let greeting = conn.read_reply().map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection without a greeting",
            ),
            _ => e,
        })?;
        if !greeting.starts_with("HELLO") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected greeting {greeting:?}"),
            ));
        }
        conn.set_timeouts(io_timeout)?;
        Ok(conn)
    }

    /// `PING` → `PONG`.
    pub fn ping(&mut self) -> io::Result<()> {
        self.call("PING", "PONG")
    }

    /// Asks the server to work for `d` (it sleeps) and waits for `DONE`.
    pub fn work(&mut self, d: Duration) -> io::Result<()> {
        self.call(&format!("WORK {}", d.as_millis()), "DONE")
    }

    /// Sends one command and checks the reply; any failure marks the connection broken.
    fn call(&mut self, command: &str, expected: &str) -> io::Result<()> {
        let result = self.exchange(command, expected);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// One request line out, one reply line back, compared with what was expected.
    fn exchange(&mut self, command: &str, expected: &str) -> io::Result<()> {
        self.writer.write_all(format!("{command}\n").as_bytes())?;
        let reply = self.read_reply()?;
        if reply == expected {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sent {command:?}, expected {expected:?}, got {reply:?}"),
            ))
        }
    }

    /// Reads one reply line; EOF (the server hung up) is an error.
    fn read_reply(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(line.trim_end().to_owned())
    }

    /// Bounds every read and write from now on by `d`.
    fn set_timeouts(&self, d: Duration) -> io::Result<()> {
        let d = d.max(Duration::from_millis(1)); // a zero timeout is rejected by std
        self.writer.set_read_timeout(Some(d))?;
        self.writer.set_write_timeout(Some(d))
    }
}

/// Closing is dropping (the pool drops connections it retires): say goodbye politely
/// when the connection is still healthy, so the server closes its side at once.
impl Drop for LineConnection {
    /// `QUIT`, bounded by 100 ms, unless the connection is already known broken.
    fn drop(&mut self) {
        if !self.broken {
            let _ = self.set_timeouts(Duration::from_millis(100));
            let _ = self.call("QUIT", "BYE");
        }
    }
}

/// The [`ConnectionFactory`] for the demo server: this is all a backend has to write.
pub struct LineFactory {
    /// Where the demo server listens.
    pub addr: SocketAddr,
    /// Read/write timeout for a request on an open connection.
    pub io_timeout: Duration,
}

impl ConnectionFactory for LineFactory {
    type Connection = LineConnection;
    type Error = io::Error;

    /// Connect (bounded by `timeout`) and read the greeting.
    fn create(&self, timeout: Duration) -> io::Result<LineConnection> {
        LineConnection::open(self.addr, timeout, self.io_timeout)
    }

    /// `PING`/`PONG`, bounded by the pool's validation timeout.
    fn validate(&self, conn: &mut LineConnection, timeout: Duration) -> io::Result<()> {
        conn.set_timeouts(timeout)?;
        conn.ping()?;
        conn.set_timeouts(self.io_timeout)
    }

    /// No I/O here: just what earlier requests found out.
    fn is_broken(&self, conn: &mut LineConnection) -> bool {
        conn.broken
    }
}
