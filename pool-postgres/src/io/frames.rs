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

/// Splits a byte stream of protocol messages (a type byte and a length) and reports each
/// message's type and length as its header passes.
///
/// Nothing is allocated or reserved from a length: a body is only counted down as its
/// bytes pass, so any stream in any chunking costs the same fixed few bytes.
#[derive(Default)]
pub(super) struct Frames {
    head: [u8; 5],
    have: usize,
    body_left: u64,
    /// The next message has no type byte (the startup packet).
    untyped_next: bool,
}

impl Frames {
    pub(super) fn untyped_first() -> Frames {
        Frames {
            untyped_next: true,
            ..Frames::default()
        }
    }

    /// Feeds `bytes`; calls `on_message` with each message's type byte (0 for untyped) and
    /// its length field, in stream order, whatever the chunking.
    pub(super) fn feed(&mut self, mut bytes: &[u8], mut on_message: impl FnMut(u8, u32)) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let head_len = if self.untyped_next { 4 } else { 5 };
            let n = (head_len - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == head_len {
                let (ty, len) = if self.untyped_next {
                    (0, &self.head[..4])
                } else {
                    (self.head[0], &self.head[1..5])
                };
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                self.body_left = u64::from(len.saturating_sub(4));
                self.have = 0;
                self.untyped_next = false;
                on_message(ty, len);
            }
        }
    }
}
