//! pcapng blocks and their options (draft-ietf-opsawg-pcapng): section
//! headers of either byte order, interface descriptions, enhanced, simple
//! and obsolete packet blocks, and the blocks Wireshark numbers like
//! frames. The block types and option codes here are also the ones the
//! writer (`writer.rs`) puts down.

use super::{Direction, Interface, RawStats, Record, Step, Stop, TsResolution, u16_at, u32_at};

/// Block types (section 11.1). The section header's type reads the same in
/// both byte orders.
pub(super) const BT_SHB: u32 = 0x0a0d_0d0a;
pub(super) const BT_IDB: u32 = 0x0000_0001;
/// The obsolete packet block (appendix A): an EPB with a 16-bit interface.
const BT_OPB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
/// Interface statistics block (section 4.6).
pub(super) const BT_ISB: u32 = 0x0000_0005;
pub(super) const BT_EPB: u32 = 0x0000_0006;
/// systemd journal export entries.
const BT_JOURNAL: u32 = 0x0000_0009;
/// Custom blocks, copyable and not (section 4.7).
const BT_CUSTOM: u32 = 0x0000_0bad;
const BT_CUSTOM_NO_COPY: u32 = 0x4000_0bad;

/// Byte-order magic (section 4.1): read back as 1a2b3c4d it says "same
/// byte order as the reader".
pub(super) const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// Option codes (sections 3.5, 4.1, 4.2, 4.3).
pub(super) const OPT_ENDOFOPT: u16 = 0;
pub(super) const OPT_COMMENT: u16 = 1;
pub(super) const SHB_OS: u16 = 3;
pub(super) const SHB_USERAPPL: u16 = 4;
pub(super) const IF_NAME: u16 = 2;
pub(super) const IF_DESCRIPTION: u16 = 3;
pub(super) const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;
/// `epb_flags`; the OPB's `pack_flags` has the same code and layout.
pub(super) const EPB_FLAGS: u16 = 2;
/// Interface statistics options (section 4.6): start and end of the count
/// (timestamps in the interface's units, high word first), then 64-bit
/// counters.
pub(super) const ISB_STARTTIME: u16 = 2;
pub(super) const ISB_ENDTIME: u16 = 3;
pub(super) const ISB_IFRECV: u16 = 4;
pub(super) const ISB_IFDROP: u16 = 5;
pub(super) const ISB_FILTERACCEPT: u16 = 6;
pub(super) const ISB_OSDROP: u16 = 7;
pub(super) const ISB_USRDELIV: u16 = 8;

/// Largest block accepted; Wireshark uses the same bound (16 MiB).
const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// Options of a block, as (code, value) pairs.
fn options(d: &[u8], mut at: usize, end: usize, be: bool) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if at + 4 > end {
            return None;
        }
        let code = u16_at(d, at, be);
        let len = usize::from(u16_at(d, at + 2, be));
        if code == OPT_ENDOFOPT || at + 4 + len > end {
            return None;
        }
        let value = &d[at + 4..at + 4 + len];
        at += 4 + len.div_ceil(4) * 4;
        Some((code, value))
    })
}

/// A timestamp of 8 bytes: two 32-bit words in the section's byte order,
/// the high word first (sections 4.3 and 4.6).
fn timestamp(v: &[u8], be: bool) -> u64 {
    (u64::from(u32_at(v, 0, be)) << 32) | u64::from(u32_at(v, 4, be))
}

/// A 64-bit counter option: one u64 in the section's byte order (section
/// 4.6), unlike a timestamp; `None` when the option has another length.
fn counter(v: &[u8], be: bool) -> Option<u64> {
    let b: [u8; 8] = v.try_into().ok()?;
    Some(if be {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    })
}

fn utf8(v: &[u8]) -> Option<&str> {
    // Some writers include the C string terminator in the option length.
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    std::str::from_utf8(v).ok()
}

/// Reads the block at `pos`; `be` is the byte order of the section it is
/// in (a section header brings its own).
pub(super) fn block(d: &[u8], pos: usize, be: bool) -> Step<'_> {
    let left = d.len() - pos;
    if left < 12 {
        return Err(Stop::Cut {
            need: 12,
            why: format!("file ends in the middle of a block header ({left} of 12 bytes)"),
        });
    }
    let raw_type = u32::from_le_bytes([d[pos], d[pos + 1], d[pos + 2], d[pos + 3]]);
    // A section header sets the byte order for itself and what follows.
    let be = if raw_type == BT_SHB {
        match u32::from_le_bytes([d[pos + 8], d[pos + 9], d[pos + 10], d[pos + 11]]) {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            m => {
                return Err(Stop::Bad(format!(
                    "section header has byte-order magic {m:08x}, expected 1a2b3c4d"
                )));
            }
        }
    } else {
        be
    };
    let block_type = u32_at(d, pos, be);
    let total = u32_at(d, pos + 4, be);
    if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK {
        return Err(Stop::Bad(format!(
            "block of type {block_type:#x} has impossible length {total}"
        )));
    }
    let total = total as usize;
    if left < total {
        return Err(Stop::Cut {
            need: total,
            why: format!(
                "file ends in the middle of a block of type {block_type:#x} ({left} of {total} bytes)"
            ),
        });
    }
    if u32_at(d, pos + total - 4, be) as usize != total {
        return Err(Stop::Bad(format!(
            "block of type {block_type:#x} has different leading and trailing lengths"
        )));
    }
    let body = pos + 8;
    let end = pos + total - 4;
    let body_len = end - body;
    let record = match block_type {
        BT_SHB => {
            if body_len < 16 {
                return Err(Stop::Bad("section header block too short".into()));
            }
            Record::Section { big_endian: be }
        }
        BT_IDB => {
            if body_len < 8 {
                return Ok((
                    Record::Skip("interface description block too short".into()),
                    total,
                ));
            }
            let mut iface = Interface {
                link_type: u16_at(d, body, be),
                snaplen: u32_at(d, body + 4, be),
                name: None,
                description: None,
                resolution: TsResolution::Pow10(6),
                offset_secs: 0,
            };
            for (code, v) in options(d, body + 8, end, be) {
                match (code, v.len()) {
                    (IF_NAME, _) => iface.name = utf8(v).map(str::to_owned),
                    (IF_DESCRIPTION, _) => iface.description = utf8(v).map(str::to_owned),
                    (IF_TSRESOL, 1) => {
                        let n = v[0] & 0x7f;
                        iface.resolution = if v[0] & 0x80 != 0 {
                            TsResolution::Pow2(n)
                        } else {
                            TsResolution::Pow10(n)
                        };
                    }
                    (IF_TSOFFSET, 8) => {
                        let b: [u8; 8] = v.try_into().unwrap_or_default();
                        iface.offset_secs = if be {
                            i64::from_be_bytes(b)
                        } else {
                            i64::from_le_bytes(b)
                        };
                    }
                    _ => {}
                }
            }
            Record::Interface(iface)
        }
        // Enhanced and obsolete packet blocks share the layout after their
        // first word.
        BT_EPB | BT_OPB => {
            if body_len < 20 {
                return Ok((
                    Record::Skip(format!("packet block too short ({body_len} bytes of body)")),
                    total,
                ));
            }
            let local_interface = if block_type == BT_EPB {
                u32_at(d, body, be)
            } else {
                u32::from(u16_at(d, body, be))
            };
            let ts_units =
                (u64::from(u32_at(d, body + 4, be)) << 32) | u64::from(u32_at(d, body + 8, be));
            let caplen = u32_at(d, body + 12, be) as usize;
            let wire_len = u32_at(d, body + 16, be);
            let data_at = body + 20;
            if caplen > end - data_at {
                return Ok((
                    Record::Skip(format!(
                        "packet block says {caplen} captured bytes but holds {}",
                        end - data_at
                    )),
                    total,
                ));
            }
            let mut direction = None;
            let mut comment = None;
            for (code, v) in options(d, data_at + caplen.div_ceil(4) * 4, end, be) {
                match code {
                    OPT_COMMENT if comment.is_none() => comment = utf8(v),
                    EPB_FLAGS if v.len() == 4 => {
                        direction = match u32_at(v, 0, be) & 3 {
                            1 => Some(Direction::In),
                            2 => Some(Direction::Out),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            Record::Packet {
                local_interface,
                ts_units: Some(ts_units),
                data: &d[data_at..data_at + caplen],
                wire_len,
                direction,
                comment,
            }
        }
        // Simple packet block: no interface id (always 0), no timestamp.
        BT_SPB => {
            if body_len < 4 {
                return Ok((Record::Skip("simple packet block too short".into()), total));
            }
            let wire_len = u32_at(d, body, be);
            // The captured length is the smaller of the original length and
            // the block's room; the interface snaplen is applied by the caller.
            let caplen = (wire_len as usize).min(body_len - 4);
            Record::Packet {
                local_interface: 0,
                ts_units: None,
                data: &d[body + 4..body + 4 + caplen],
                wire_len,
                direction: None,
                comment: None,
            }
        }
        BT_ISB => {
            if body_len < 12 {
                return Ok((
                    Record::Skip("interface statistics block too short".into()),
                    total,
                ));
            }
            let mut stats = RawStats {
                interface: u32_at(d, body, be),
                ts_units: timestamp(&d[body + 4..body + 12], be),
                ..RawStats::default()
            };
            for (code, v) in options(d, body + 12, end, be) {
                let counter = || counter(v, be);
                match code {
                    OPT_COMMENT if stats.comment.is_none() => {
                        stats.comment = utf8(v).map(str::to_owned);
                    }
                    ISB_STARTTIME if v.len() == 8 => stats.start_units = Some(timestamp(v, be)),
                    ISB_ENDTIME if v.len() == 8 => stats.end_units = Some(timestamp(v, be)),
                    ISB_IFRECV => stats.if_received = counter(),
                    ISB_IFDROP => stats.if_dropped = counter(),
                    ISB_FILTERACCEPT => stats.filter_accepted = counter(),
                    ISB_OSDROP => stats.os_dropped = counter(),
                    ISB_USRDELIV => stats.delivered = counter(),
                    _ => {}
                }
            }
            Record::Stats(stats)
        }
        BT_CUSTOM | BT_CUSTOM_NO_COPY | BT_JOURNAL => Record::Numbered,
        _ => Record::Other,
    };
    Ok((record, total))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{all, block, epb, idb, section, shb};
    use super::super::index;
    use super::*;
    use crate::link;

    #[test]
    fn pcapng_sections_interfaces_resolutions_and_flags() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(idb(101, Some(9)));
        d.extend(epb(1, 5_000_000_123, b"xy", Some(2)));
        d.extend(shb());
        d.extend(idb(113, Some(0x80 | 10)));
        d.extend(epb(0, 3 * 1024, b"z", None));
        let ix = index(&d).unwrap();
        assert_eq!(
            ix.interfaces
                .iter()
                .map(|i| i.link_type)
                .collect::<Vec<_>>(),
            vec![1, 101, 113]
        );
        assert_eq!(ix.interfaces[0].name.as_deref(), Some("eth0"));
        let frames: Vec<_> = ix
            .chunks
            .iter()
            .flat_map(|c| ix.frames(&d, c).collect::<Vec<_>>())
            .collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].interface, frames[0].ts_ns, frames[0].direction),
            (1, Some(5_000_000_123), Some(Direction::Out))
        );
        assert_eq!(
            (frames[1].interface, frames[1].ts_ns, frames[1].number),
            (2, Some(3_000_000_000), 2)
        );
    }

    #[test]
    fn pcapng_packet_for_unknown_interface_is_skipped_and_reported() {
        let d = section(&[link::ETHERNET], &[(7, 0, b"bad"), (0, 0, b"good")]);
        let (ix, frames) = all(&d);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 1);
        assert_eq!(ix.damage.len(), 1);
        assert!(ix.damage[0].message.contains("interface 7"));
    }

    /// An ISB as dumpcap writes one, built byte by byte: counters are u64
    /// in the section's byte order, timestamps two u32 words high first.
    #[test]
    fn statistics_blocks_are_read_with_their_counters_and_not_numbered() {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend(1u32.to_le_bytes()); // ts high
        body.extend(2u32.to_le_bytes()); // ts low
        body.extend([2, 0, 8, 0]); // isb_starttime
        body.extend(1u32.to_le_bytes());
        body.extend(1u32.to_le_bytes());
        body.extend([4, 0, 8, 0]); // isb_ifrecv
        body.extend(0x0000_0001_0000_0002u64.to_le_bytes());
        body.extend([7, 0, 8, 0]); // isb_osdrop
        body.extend(5u64.to_le_bytes());
        body.extend([8, 0, 4, 0, 9, 9, 9, 9]); // isb_usrdeliv of a bad length
        body.extend([1, 0, 2, 0, b'h', b'i', 0, 0]); // opt_comment
        body.extend([0, 0, 0, 0]);
        let mut d = shb();
        d.extend(idb(1, Some(9)));
        d.extend(epb(0, 0, b"a", None));
        d.extend(block(BT_ISB, &body));
        d.extend(block(BT_ISB, &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        d.extend(block(BT_ISB, &[0; 4]));
        d.extend(epb(0, 0, b"b", None));
        let (ix, frames) = all(&d);
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            ix.stats,
            vec![crate::InterfaceStats {
                interface: 0,
                ts_ns: (1 << 32) + 2,
                start_ns: Some((1 << 32) + 1),
                end_ns: None,
                if_received: Some((1 << 32) + 2),
                if_dropped: None,
                filter_accepted: None,
                os_dropped: Some(5),
                delivered: None,
                comment: Some("hi".into()),
            }]
        );
        let damage: Vec<&str> = ix.damage.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(damage.len(), 2, "{damage:?}");
        assert!(damage[0].contains("interface 3"), "{damage:?}");
        assert!(
            damage[1].contains("statistics block too short"),
            "{damage:?}"
        );
    }

    #[test]
    fn custom_blocks_take_a_frame_number_like_in_wireshark() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(block(BT_CUSTOM, &[0; 8]));
        d.extend(epb(0, 0, b"a", None));
        d.extend(block(BT_CUSTOM_NO_COPY, &[0; 8]));
        d.extend(epb(0, 0, b"b", None));
        let (ix, frames) = all(&d);
        assert_eq!(ix.frames, 2);
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), vec![2, 4]);
    }
}
