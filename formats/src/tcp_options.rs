//! The TCP options that path-MTU and RTT analysis read, from the options
//! area of a TCP header: MSS (RFC 9293 section 3.2), window scale and
//! timestamps (RFC 7323 sections 2 and 3), SACK-permitted and SACK blocks
//! (RFC 2018).
//!
//! Read in place, no allocation. Unknown options (MPTCP, TFO, MD5, TCP-AO,
//! experiments) are stepped over by their length, as tshark does, so an
//! unknown option in front does not hide the timestamps behind it.

/// The options of one TCP header; the first occurrence of each counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift count (kind 3), as sent (RFC 7323 caps its use at 14).
    pub wscale: Option<u8>,
    /// SACK-permitted (kind 4).
    pub sack_permitted: bool,
    /// Blocks in the first SACK option (kind 5).
    pub sack_blocks: u8,
    /// TSval and TSecr (kind 8).
    pub timestamps: Option<(u32, u32)>,
}

const EOL: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const WSCALE: u8 = 3;
const SACK_PERMITTED: u8 = 4;
const SACK: u8 = 5;
const TIMESTAMPS: u8 = 8;

impl TcpOptions {
    /// Reads `d`, the bytes after the 20-byte fixed header up to the data
    /// offset, or fewer where the capture cut them. The walk ends at
    /// end-of-list, at a length below 2 (nothing after it can be found) and
    /// at an option cut by the end of `d`; a known option with a length
    /// other than its own is stepped over and not read (tshark calls it
    /// malformed).
    pub fn parse(d: &[u8]) -> TcpOptions {
        // NOP, NOP, timestamps (RFC 7323 appendix A): what nearly every
        // segment after the handshake carries, read without the walk.
        if let Some(&[NOP, NOP, TIMESTAMPS, 10, a, b, c, e, f, g, h, i]) = d.first_chunk::<12>()
            && d.len() == 12
        {
            return TcpOptions {
                timestamps: Some((
                    u32::from_be_bytes([a, b, c, e]),
                    u32::from_be_bytes([f, g, h, i]),
                )),
                ..TcpOptions::default()
            };
        }
        let mut o = TcpOptions::default();
        let mut at = 0;
        while let Some(&kind) = d.get(at) {
            match kind {
                EOL => break,
                NOP => {
                    at += 1;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = d.get(at + 1) else { break };
            let len = usize::from(len);
            let Some(v) = d.get(at + 2..at + len).filter(|_| len >= 2) else {
                break;
            };
            match (kind, v.len()) {
                (MSS, 2) if o.mss.is_none() => o.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                (WSCALE, 1) if o.wscale.is_none() => o.wscale = Some(v[0]),
                (SACK_PERMITTED, 0) => o.sack_permitted = true,
                (SACK, n) if o.sack_blocks == 0 && n > 0 && n % 8 == 0 => {
                    o.sack_blocks = (n / 8).min(usize::from(u8::MAX)) as u8
                }
                (TIMESTAMPS, 8) if o.timestamps.is_none() => {
                    o.timestamps = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                    ))
                }
                _ => {}
            }
            at += len;
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_real_headers() {
        let linux_syn: &[u8] = &[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let cases: &[(&str, &[u8], TcpOptions)] = &[
            (
                "Linux SYN: MSS, SACK-permitted, timestamps, NOP, window scale",
                linux_syn,
                TcpOptions {
                    mss: Some(1460),
                    wscale: Some(7),
                    sack_permitted: true,
                    sack_blocks: 0,
                    timestamps: Some((7, 0)),
                },
            ),
            (
                "data segment: NOP, NOP, timestamps",
                &[1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0],
                TcpOptions {
                    timestamps: Some((256, 512)),
                    ..TcpOptions::default()
                },
            ),
            (
                "dup ACK with two SACK blocks after the timestamps",
                &[
                    1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
                    0, 3, 0, 0, 0, 4,
                ],
                TcpOptions {
                    sack_blocks: 2,
                    timestamps: Some((1, 2)),
                    ..TcpOptions::default()
                },
            ),
            (
                "unknown option (TFO cookie) in front is stepped over",
                &[34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 0x23, 0x28],
                TcpOptions {
                    mss: Some(9000),
                    ..TcpOptions::default()
                },
            ),
            (
                "MSS with a wrong length is not read, what follows is",
                &[2, 3, 5, 3, 3, 2],
                TcpOptions {
                    wscale: Some(2),
                    ..TcpOptions::default()
                },
            ),
            (
                "end of list stops the walk",
                &[0, 2, 4, 5, 0xb4],
                TcpOptions::default(),
            ),
            (
                "length 0 stops the walk instead of looping",
                &[19, 0, 2, 4, 5, 0xb4],
                TcpOptions::default(),
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(TcpOptions::parse(bytes), *want, "{what}");
        }
    }

    #[test]
    fn options_cut_by_the_snap_length_keep_what_is_whole() {
        let linux_syn: &[u8] = &[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        for cut in 0..linux_syn.len() {
            let o = TcpOptions::parse(&linux_syn[..cut]);
            assert_eq!(o.mss.is_some(), cut >= 4, "cut {cut}");
            assert_eq!(o.sack_permitted, cut >= 6, "cut {cut}");
            assert_eq!(o.timestamps.is_some(), cut >= 16, "cut {cut}");
            assert_eq!(o.wscale, None, "cut {cut}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60)) {
            TcpOptions::parse(&d);
        }
    }
}
