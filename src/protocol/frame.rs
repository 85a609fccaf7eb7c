//! Framing: a type byte and a big-endian length that counts itself. "Need more bytes" is
//! `Ok(None)`; a length that cannot be right is an error, so a peer can never make the gateway
//! buffer without bound.

use bytes::{Buf, Bytes, BytesMut};

/// Length of the type byte plus the length word.
pub const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("invalid startup packet length {0}")]
    BadStartupLength(i64),
    #[error("malformed {what} message")]
    Malformed { what: &'static str },
}

/// One complete message with its header, exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl Frame {
    /// Wraps bytes that already form one complete message (used by tests and builders).
    pub fn from_bytes(bytes: Bytes) -> Frame {
        debug_assert!(bytes.len() >= HEADER_LEN);
        Frame { bytes }
    }

    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The body after the length word.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The whole message, header included: what is forwarded.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Splits one regular (typed) message off the front of `buf`.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    match peek_frame_len(buf, max)? {
        Some(total) => Ok(Some(Frame {
            bytes: buf.split_to(total).freeze(),
        })),
        None => Ok(None),
    }
}

/// The total length (header included) of the message at the front of `buf`, if all of it is
/// there. Errors on impossible lengths as soon as the header is readable.
pub fn peek_frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength(len as i64));
    }
    let total = len as usize + 1;
    if total > max {
        return Err(FrameError::TooLarge { len: total, max });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Splits the untyped startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest,
/// CancelRequest) off the front of `buf`: `(code, body)`.
pub fn split_startup(buf: &mut BytesMut, max: usize) -> Result<Option<(i32, Bytes)>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > max {
        return Err(FrameError::BadStartupLength(len as i64));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    let code = packet.get_i32();
    Ok(Some((code, packet.freeze())))
}

/// Reads a NUL-terminated string from the front of `b`, returning it and the rest.
pub fn read_cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let nul = memchr(b)?;
    let s = std::str::from_utf8(&b[..nul]).ok()?;
    Some((s, &b[nul + 1..]))
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == 0)
}

/// The text of a simple Query message, borrowed from the frame.
pub fn query_text(frame: &Frame) -> Result<&str, FrameError> {
    let body = frame.body();
    match body.split_last() {
        Some((0, text)) => {
            std::str::from_utf8(text).map_err(|_| FrameError::Malformed { what: "Query" })
        }
        _ => Err(FrameError::Malformed { what: "Query" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn msg(tag: u8, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        b
    }

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let mut buf = msg(b'Q', b"select 1\0");
        buf.extend_from_slice(&msg(b'X', b"")[..3]);
        let f = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag(), b'Q');
        assert_eq!(query_text(&f).unwrap(), "select 1");
        assert_eq!(split_frame(&mut buf, 1 << 20).unwrap(), None);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn rejects_impossible_and_oversized_lengths() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert_eq!(split_frame(&mut buf, 100), Err(FrameError::BadLength(3)));
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0, 0, 0][..]);
        assert!(matches!(
            split_frame(&mut buf, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        assert!(split_startup(&mut buf, 10000).is_err());
    }

    #[test]
    fn query_without_terminator_is_malformed() {
        let f = Frame::from_bytes(msg(b'Q', b"select 1").freeze());
        assert!(query_text(&f).is_err());
    }

    #[test]
    fn startup_packet_splits_code_and_body() {
        let mut b = BytesMut::new();
        b.put_i32(8);
        b.put_i32(80877103);
        let (code, body) = split_startup(&mut b, 10000).unwrap().unwrap();
        assert_eq!(code, 80877103);
        assert!(body.is_empty());
    }
}

/// Whether the body of a Parse, Bind or Close holds every field its counts and lengths
/// announce. The decoders the gate hands these to read past the end of a short body (a panic,
/// not an error), so a message cut short must be refused before it gets there.
pub fn extended_body_complete(tag: u8, body: &[u8]) -> bool {
    let mut r = Reader(body);
    let complete = match tag {
        b'P' => (|| {
            r.cstr()?;
            r.cstr()?;
            let n = r.count()?;
            r.skip(4 * n)
        })(),
        b'B' => (|| {
            r.cstr()?;
            r.cstr()?;
            let formats = r.count()?;
            r.skip(2 * formats)?;
            for _ in 0..r.count()? {
                let len = r.i32()?;
                if len != -1 {
                    r.skip(usize::try_from(len).ok()?)?;
                }
            }
            let results = r.count()?;
            r.skip(2 * results)
        })(),
        b'C' => (|| {
            r.skip(1)?;
            r.cstr()
        })(),
        _ => Some(()),
    };
    complete.is_some()
}

/// A bounds-checked cursor over a message body.
struct Reader<'b>(&'b [u8]);

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn cstr(&mut self) -> Option<()> {
        let nul = memchr(self.0)?;
        self.skip(nul + 1)
    }

    fn i32(&mut self) -> Option<i32> {
        let v = i32::from_be_bytes(self.0.get(..4)?.try_into().ok()?);
        self.skip(4)?;
        Some(v)
    }

    /// An Int16 count; a negative one is refused.
    fn count(&mut self) -> Option<usize> {
        let v = i16::from_be_bytes(self.0.get(..2)?.try_into().ok()?);
        self.skip(2)?;
        usize::try_from(v).ok()
    }
}

#[cfg(test)]
mod body_tests {
    use super::extended_body_complete;

    #[test]
    fn short_extended_messages_are_incomplete() {
        // Parse "" "" with no parameter count: the 11-byte message that once panicked.
        assert!(!extended_body_complete(b'P', b"\0\0"));
        assert!(extended_body_complete(b'P', b"\0SELECT 1\0\0\0"));
        assert!(extended_body_complete(
            b'P',
            b"s\0SELECT $1\0\0\x01\0\0\0\x17"
        ));
        assert!(!extended_body_complete(
            b'P',
            b"s\0SELECT $1\0\0\x02\0\0\0\x17"
        ));
        // Bind: portal, statement, formats, values, result formats.
        assert!(extended_body_complete(
            b'B',
            b"\0\0\0\0\0\x01\0\0\0\x011\0\0"
        ));
        assert!(extended_body_complete(
            b'B',
            b"\0\0\0\0\0\x01\xff\xff\xff\xff\0\0"
        ));
        assert!(!extended_body_complete(b'B', b"\0\0"));
        assert!(!extended_body_complete(
            b'B',
            b"\0\0\0\0\0\x01\0\0\0\x051\0\0"
        ));
        assert!(!extended_body_complete(
            b'B',
            b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"
        ));
        assert!(!extended_body_complete(b'B', b"\0\0\xff\xff\0\0\0\0"));
        // Close: kind and name.
        assert!(extended_body_complete(b'C', b"Sname\0"));
        assert!(!extended_body_complete(b'C', b"S"));
        assert!(!extended_body_complete(b'C', b""));
    }
}
