//! Protocol framing for the request count: [`Frames`] splits a byte stream into messages
//! and reports each message's type as its header passes.

/// Splits a byte stream of protocol messages (a type byte and a length) and reports each
/// message's type as its header passes.
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

    /// Feeds `bytes`; calls `on_message` with each message's type byte (0 for untyped).
    pub(super) fn feed(&mut self, mut bytes: &[u8], mut on_message: impl FnMut(u8)) {
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
                on_message(ty);
            }
        }
    }
}
