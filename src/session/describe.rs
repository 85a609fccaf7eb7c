//! Describes the gateway adds. The relay checks every RowDescription against the catalog
//! snapshot (a column added on the server since would otherwise flow out unseen), but the
//! server only describes a portal when asked: an Execute with no Describe of its portal in
//! the unit (`Parse/Bind/Execute/Sync`, or an Execute of a SQL cursor's name) returns data
//! rows alone. So before such an Execute the gateway sends a Describe of the portal itself;
//! the back half checks the answer like any other and keeps it from the client, which never
//! asked for it.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::protocol::frame::peek_frame_len;

/// What went upstream for a unit: its messages, with the gateway's Describes.
pub struct Described {
    /// The tags of the messages written, in order.
    pub tags: Vec<u8>,
    /// One entry per Describe in `bytes`, in order: whether the gateway added it (its
    /// RowDescription or NoData is not relayed).
    pub describes: VecDeque<bool>,
}

/// Appends `frames`, whole frontend messages back to back, to `bytes`, with a Describe of the
/// portal before each Execute that has none since the portal was last bound in this unit.
pub fn with_describes<'a>(
    bytes: &mut BytesMut,
    frames: impl IntoIterator<Item = &'a [u8]>,
) -> Described {
    let mut out = Described {
        tags: Vec::new(),
        describes: VecDeque::new(),
    };
    // Portals described since bound; a unit holds a handful, so a list beats a set.
    let mut described: Vec<&[u8]> = Vec::new();
    for frame in frames {
        let mut rest = frame;
        while let Ok(Some(len)) = peek_frame_len(rest, usize::MAX) {
            let (msg, tail) = rest.split_at(len);
            rest = tail;
            let tag = msg[0];
            let body = &msg[5..];
            match tag {
                b'B' => {
                    // A portal bound again has not been described as bound now.
                    let portal = cstr(body);
                    described.retain(|p| *p != portal);
                }
                b'D' => {
                    if body.first() == Some(&b'P') {
                        described.push(cstr(&body[1..]));
                    }
                    out.describes.push_back(false);
                }
                b'E' => {
                    let portal = cstr(body);
                    if !described.contains(&portal) {
                        push_describe(bytes, portal);
                        out.tags.push(b'D');
                        out.describes.push_back(true);
                        described.push(portal);
                    }
                }
                _ => {}
            }
            bytes.extend_from_slice(msg);
            out.tags.push(tag);
        }
    }
    out
}

/// The NUL-terminated string at the start of `body` (all of it when unterminated; the gate
/// has already refused malformed messages).
fn cstr(body: &[u8]) -> &[u8] {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    &body[..end]
}

fn push_describe(out: &mut BytesMut, portal: &[u8]) {
    out.extend_from_slice(b"D");
    out.extend_from_slice(&((4 + 1 + portal.len() + 1) as i32).to_be_bytes());
    out.extend_from_slice(b"P");
    out.extend_from_slice(portal);
    out.extend_from_slice(&[0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn run(frames: &[Vec<u8>]) -> (Described, BytesMut) {
        let mut bytes = BytesMut::new();
        let d = with_describes(&mut bytes, frames.iter().map(Vec::as_slice));
        (d, bytes)
    }

    #[test]
    fn an_execute_without_a_describe_gets_one_and_a_described_portal_does_not() {
        let parse = msg(b'P', b"\0SELECT 1\0\0\0");
        let bind = |p: &[u8]| msg(b'B', &[p, b"\0\0\0\0\0\0\0\0"].concat());
        let exec = |p: &[u8]| msg(b'E', &[p, b"\0\0\0\0\0"].concat());
        let desc = |p: &[u8]| msg(b'D', &[b"P", p, b"\0"].concat());
        let sync = msg(b'S', b"");

        let (d, bytes) = run(&[parse.clone(), bind(b""), exec(b""), sync.clone()]);
        assert_eq!(d.tags, b"PBDES");
        assert_eq!(d.describes, [true]);
        // The added Describe names the portal, as a client's would.
        let expected = [parse.clone(), bind(b""), desc(b""), exec(b""), sync.clone()].concat();
        assert_eq!(&bytes[..], &expected[..]);

        let (d, _) = run(&[bind(b"p"), desc(b"p"), exec(b"p"), exec(b"p"), sync.clone()]);
        assert_eq!(d.tags, b"BDEES");
        assert_eq!(d.describes, [false]);

        // Bound again after its Describe: described again before the next Execute.
        let (d, _) = run(&[
            bind(b"p"),
            desc(b"p"),
            exec(b"p"),
            bind(b"p"),
            exec(b"p"),
            sync.clone(),
        ]);
        assert_eq!(d.tags, b"BDEBDES");
        assert_eq!(d.describes, [false, true]);

        // A statement Describe describes no portal; a cursor's name is a portal.
        let (d, bytes) = run(&[msg(b'D', b"Ss1\0"), exec(b"c"), sync]);
        assert_eq!(d.tags, b"DDES");
        assert_eq!(d.describes, [false, true]);
        assert!(bytes.windows(3).any(|w| w == b"Pc\0"));
    }
}
