//! Classic libpcap files: the file header and the records after it, in
//! either byte order, with micro- or nanosecond timestamps, and the
//! Kuznetzov "modified" format whose records are 24 bytes
//! (pcap-savefile(5); libpcap sf-pcap.c).

use super::{Direction, Index, Interface, Layout, Record, Section, Step, Stop, TsResolution};
use super::{u16_at, u32_at};
use crate::error::{Error, Hex};

/// Magic numbers as read little-endian from the first 4 bytes.
pub(super) const MAGIC_US: u32 = 0xa1b2_c3d4;
pub(super) const MAGIC_NS: u32 = 0xa1b2_3c4d;
pub(super) const MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

/// libpcap refuses records larger than this (pcap-int.h MAXIMUM_SNAPLEN);
/// anything bigger in a classic pcap is a damaged header, not a packet.
const MAX_RECORD: u32 = 262_144;

/// Bytes of the file header; the first record follows it.
pub(super) const HEADER_LEN: usize = 24;

/// Whether `m`, read in either byte order, is a pcap magic.
pub(super) fn is_magic(m: u32) -> bool {
    matches!(m, MAGIC_US | MAGIC_NS | MAGIC_MODIFIED)
}

/// What a classic pcap record walk needs from the file header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params {
    pub big_endian: bool,
    pub nanos: bool,
    pub modified: bool,
    pub snaplen: u32,
}

/// Reads the file header from `d`, the file's first bytes: the index of a
/// file with one section and its one implicit interface, and what its
/// records need. Fails when `d` is not a pcap file header.
pub(super) fn header(d: &[u8]) -> Result<(Index, Params), Error> {
    let Some(magic) = d.first_chunk::<4>() else {
        return Err(Error::UnknownFormat {
            magic: Hex(d.to_vec()),
        });
    };
    let magic_le = u32::from_le_bytes(*magic);
    if !is_magic(magic_le) && !is_magic(magic_le.swap_bytes()) {
        return Err(Error::UnknownFormat {
            magic: Hex(magic.to_vec()),
        });
    }
    if d.len() < HEADER_LEN {
        return Err(Error::TooShort {
            what: "pcap file",
            len: d.len(),
            need: HEADER_LEN,
        });
    }
    let big_endian = !is_magic(magic_le);
    let magic = if big_endian {
        magic_le.swap_bytes()
    } else {
        magic_le
    };
    let major = u16_at(d, 4, big_endian);
    if major != 2 {
        return Err(Error::Damaged {
            what: "pcap file header",
            offset: 4,
            detail: format!("version {major}, only version 2 exists"),
        });
    }
    let snaplen = u32_at(d, 16, big_endian);
    let nanos = magic == MAGIC_NS;
    let modified = magic == MAGIC_MODIFIED;
    // The upper bits of the link-type word carry FCS information.
    let link_type = (u32_at(d, 20, big_endian) & 0xffff) as u16;
    let ix = Index {
        layout: Layout::Pcap {
            big_endian,
            nanos,
            modified,
        },
        interfaces: vec![Interface {
            link_type,
            snaplen,
            name: None,
            description: None,
            resolution: TsResolution::Pow10(if nanos { 9 } else { 6 }),
            offset_secs: 0,
        }],
        sections: vec![Section {
            big_endian,
            first_interface: 0,
            interfaces: 1,
        }],
        chunks: Vec::new(),
        frames: 0,
        end: HEADER_LEN,
        damage: Vec::new(),
        stats: Vec::new(),
    };
    let params = Params {
        big_endian,
        nanos,
        modified,
        snaplen,
    };
    Ok((ix, params))
}

/// Reads the record at `pos`.
pub(super) fn record(d: &[u8], pos: usize, p: Params) -> Step<'_> {
    let Params {
        big_endian,
        nanos,
        modified,
        snaplen,
    } = p;
    let header = if modified { 24 } else { 16 };
    let left = d.len() - pos;
    if left < header {
        return Err(Stop::Cut {
            need: header,
            why: format!("file ends in the middle of a record header ({left} of {header} bytes)"),
        });
    }
    let sec = u32_at(d, pos, big_endian);
    let frac = u32_at(d, pos + 4, big_endian);
    let caplen = u32_at(d, pos + 8, big_endian);
    let wire_len = u32_at(d, pos + 12, big_endian);
    if caplen > MAX_RECORD.max(snaplen) {
        return Err(Stop::Bad(format!(
            "record claims {caplen} captured bytes, more than any capture writes; the record header is damaged"
        )));
    }
    let len = header + caplen as usize;
    if left < len {
        return Err(Stop::Cut {
            need: len,
            why: format!("file ends in the middle of a record ({left} of {len} bytes)"),
        });
    }
    // The modified format adds ifindex(4), protocol(2), pkt_type(1), pad(1);
    // pkt_type 4 is PACKET_OUTGOING (linux/if_packet.h).
    let direction = modified.then(|| {
        if d[pos + 22] == 4 {
            Direction::Out
        } else {
            Direction::In
        }
    });
    // Units are counted in the pseudo-interface's resolution (10^-6 or
    // 10^-9); a fraction of 10^6 or more is kept as written, as tshark does.
    let scale = if nanos { 1_000_000_000 } else { 1_000_000 };
    let ts_units = u64::from(sec) * scale + u64::from(frac);
    Ok((
        Record::Packet {
            local_interface: 0,
            ts_units: Some(ts_units),
            data: &d[pos + header..pos + len],
            wire_len,
            direction,
            comment: None,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{all, pcap};
    use super::*;

    #[test]
    fn pcap_micro_and_nano_timestamps() {
        for (magic, frac, want) in [
            (MAGIC_US, 250_000, 1_700_000_000_250_000_000i64),
            (MAGIC_NS, 250, 1_700_000_000_000_000_250),
        ] {
            let d = pcap(magic, 1, &[(1_700_000_000, frac, b"abc")]);
            let (ix, frames) = all(&d);
            assert_eq!(ix.frames, 1);
            assert_eq!(frames, vec![(1, want, b"abc".to_vec())]);
        }
    }

    #[test]
    fn pcap_cut_in_a_record_keeps_complete_packets_and_names_offset() {
        let mut d = pcap(MAGIC_US, 1, &[(1, 0, b"first"), (2, 0, b"second")]);
        d.truncate(d.len() - 3);
        let (ix, frames) = all(&d);
        assert_eq!(frames.len(), 1);
        assert_eq!(ix.damage.len(), 1);
        assert_eq!(ix.damage[0].offset, 24 + 16 + 5);
        assert!(
            ix.damage[0].message.contains("middle of a record"),
            "{}",
            ix.damage[0].message
        );
    }
}
