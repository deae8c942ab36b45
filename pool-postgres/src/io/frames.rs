//! Protocol framing for the request count: [`Frames`] splits a byte stream into messages
//! and reports each message's type and length as its header passes; [`MAX_MESSAGE_LEN`]
//! is the longest message this crate lets the driver read.

use std::fmt;

/// The longest message (its length field: the body and the 4 length bytes) a server may
/// send: 1 GiB.
///
/// The driver buffers a whole message before it parses any of it, and it takes any length
/// up to 2 GiB - 1 (it reads the field as an `i32`): a server (or anything that answers on
/// its port) that sends such a header makes it keep buffering for as long as bytes come
/// (its buffer doubling as it grows, so up to 4 GiB per connection), and then wait for
/// the rest until a deadline. PostgreSQL itself never builds a message that large: a
/// message is assembled in one buffer of at most `MaxAllocSize` (1 GiB - 1 byte), which is
/// also the largest value a field can hold. So a header that claims more is refused as
/// soon as it passes, before the driver sees it: the read fails with an
/// [`std::io::Error`] (kind `InvalidData`) carrying a [`MessageTooLong`], the driver ends
/// the session, and the pool discards the connection (a fatal error, see
/// [`is_fatal_error`](crate::is_fatal_error)); a connect fails at once, not at its
/// deadline.
///
/// Connections to a Unix-domain socket are not wrapped (see the [module docs](super)), so
/// the cap does not apply to them.
pub const MAX_MESSAGE_LEN: u32 = 1 << 30;

/// A message header from the server claimed more than [`MAX_MESSAGE_LEN`] bytes; the
/// connection was closed without reading (or reserving memory for) the message. Found in
/// the `source()` chain of the driver's error, as the payload of an [`std::io::Error`].
///
/// ```
/// let e = pool_postgres::io::MessageTooLong::new(b'D', 0x8000_0000);
/// assert_eq!(
///     e.to_string(),
///     "the server sent a message header claiming 2147483648 bytes (type 'D'), more than \
///      the 1 GiB cap (MAX_MESSAGE_LEN, PostgreSQL's own limit); the connection was closed"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTooLong {
    ty: u8,
    len: u32,
}

impl MessageTooLong {
    /// A `MessageTooLong` for a message of type `ty` whose header claimed `len` bytes (for
    /// tests of code that handles one).
    pub fn new(ty: u8, len: u32) -> Self {
        MessageTooLong { ty, len }
    }

    /// The message's type byte (`b'D'` for a data row, ...).
    pub fn message_type(&self) -> u8 {
        self.ty
    }

    /// The length the header claimed (the length field: body and its own 4 bytes).
    pub fn claimed_len(&self) -> u32 {
        self.len
    }
}

impl fmt::Display for MessageTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server sent a message header claiming {} bytes ",
            self.len
        )?;
        if self.ty.is_ascii_graphic() {
            write!(f, "(type '{}')", char::from(self.ty))?;
        } else {
            write!(f, "(type byte {:#04x})", self.ty)?;
        }
        write!(
            f,
            ", more than the {} GiB cap (MAX_MESSAGE_LEN, PostgreSQL's own limit); \
             the connection was closed",
            MAX_MESSAGE_LEN >> 30
        )
    }
}

impl std::error::Error for MessageTooLong {}

/// One message header, as [`Frames`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame {
    /// The type byte (0 for the untyped startup packet).
    pub(super) ty: u8,
    /// The length field (the body and its own 4 bytes).
    pub(super) len: u32,
    /// A `ReadyForQuery`'s transaction status (`I`, `T` or `E`), when the [`Frames`] was
    /// asked for it ([`Frames::server`]) and the message has the one-byte body it must have.
    pub(super) status: Option<u8>,
}

/// Splits a byte stream of protocol messages (a type byte and a length) and reports each
/// message's header as it passes (for a `ReadyForQuery` read from the server, once its
/// status byte has passed too).
///
/// Nothing is allocated or reserved from a length: a body is only counted down as its
/// bytes pass, so any stream in any chunking costs the same fixed few bytes. One pass: a
/// header that lies whole in the bytes given is read where it lies; only one split across
/// two reads is gathered byte by byte.
#[derive(Default)]
pub(super) struct Frames {
    /// The header gathered so far when it came split: type, length, and a
    /// `ReadyForQuery`'s status byte.
    head: [u8; 6],
    have: usize,
    body_left: u64,
    /// The next message has no type byte (the startup packet).
    untyped_next: bool,
    /// Report each `ReadyForQuery`'s status byte (the server's side of the stream).
    ready_status: bool,
}

/// `ReadyForQuery`'s length field: 4 length bytes and the status byte.
const READY_LEN: u32 = 5;

impl Frames {
    /// The client's side: the first message is the startup packet, without a type byte.
    pub(super) fn untyped_first() -> Frames {
        Frames {
            untyped_next: true,
            ..Frames::default()
        }
    }

    /// The server's side: each `ReadyForQuery` is reported with its status byte.
    pub(super) fn server() -> Frames {
        Frames {
            ready_status: true,
            ..Frames::default()
        }
    }

    /// Whether a header of type `ty` and length `len` is a `ReadyForQuery` whose status
    /// byte this `Frames` reports with it.
    fn wants_status(&self, ty: u8, len: u32) -> bool {
        self.ready_status && ty == b'Z' && len == READY_LEN
    }

    /// Feeds `bytes`; calls `on_frame` with each message's header (type byte, 0 for
    /// untyped; length field; status), in stream order, whatever the chunking.
    pub(super) fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Frame)) {
        loop {
            if self.body_left > 0 {
                let n = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= n as u64;
                bytes = &bytes[n..];
            }
            if bytes.is_empty() {
                return;
            }
            // The common case: a whole header (and a ReadyForQuery's status byte) here,
            // nothing gathered: read it in place.
            if self.have == 0 && !self.untyped_next && bytes.len() >= 6 {
                let ty = bytes[0];
                let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                let status = self.wants_status(ty, len).then_some(bytes[5]);
                // The status byte is the whole body of a ReadyForQuery.
                let (used, body_left) = match status {
                    Some(_) => (6, 0),
                    None => (5, u64::from(len.saturating_sub(4))),
                };
                self.body_left = body_left;
                bytes = &bytes[used..];
                on_frame(Frame { ty, len, status });
                continue;
            }
            self.gather(&mut bytes, &mut on_frame);
        }
    }

    /// Gathers a header split across reads, byte by byte, from the front of `bytes`.
    fn gather(&mut self, bytes: &mut &[u8], on_frame: &mut impl FnMut(Frame)) {
        let want = if self.untyped_next {
            4
        } else if self.have >= 5 {
            6 // a ReadyForQuery's status byte
        } else {
            5
        };
        let n = (want - self.have).min(bytes.len());
        self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
        self.have += n;
        *bytes = &bytes[n..];
        if self.have < want {
            return;
        }
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let frame = match want {
            4 => {
                self.untyped_next = false;
                Frame {
                    ty: 0,
                    len: be(&self.head[..4]),
                    status: None,
                }
            }
            5 => {
                let (ty, len) = (self.head[0], be(&self.head[1..5]));
                if self.wants_status(ty, len) {
                    return; // the status byte comes next
                }
                Frame {
                    ty,
                    len,
                    status: None,
                }
            }
            _ => {
                self.have = 0;
                // body_left stays 0: the status byte was the body.
                on_frame(Frame {
                    ty: b'Z',
                    len: READY_LEN,
                    status: Some(self.head[5]),
                });
                return;
            }
        };
        self.body_left = u64::from(frame.len.saturating_sub(4));
        self.have = 0;
        on_frame(frame);
    }
}
