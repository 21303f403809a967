//! ICMP echo packets: building requests, parsing replies, and the Internet
//! checksum (RFC 1071).
//!
//! Written here rather than taken from `pnet_packet` or `etherparse`: ping
//! needs one message type (echo, RFC 792 and RFC 4443 §4) whose layout is
//! eight bytes, and the checksum is a dozen lines; either crate would bring
//! a large dependency tree for that.
//!
//! ```text
//!  0       8      16              32
//! +-------+-------+---------------+
//! | type  | code  |   checksum    |
//! +-------+-------+---------------+
//! |  identifier   |   sequence    |
//! +---------------+---------------+
//! | payload …
//! ```

/// ICMPv4 echo request (RFC 792).
pub const ECHO_REQUEST_V4: u8 = 8;
/// ICMPv4 echo reply.
pub const ECHO_REPLY_V4: u8 = 0;
/// ICMPv6 echo request (RFC 4443).
pub const ECHO_REQUEST_V6: u8 = 128;
/// ICMPv6 echo reply.
pub const ECHO_REPLY_V6: u8 = 129;
/// The echo header: type, code, checksum, identifier, sequence.
pub const HEADER_LEN: usize = 8;

/// The Internet checksum (RFC 1071): the ones' complement of the ones'
/// complement sum of the data as big-endian 16-bit words, an odd last byte
/// padded with zero.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an echo request into `out` (cleared first).
///
/// The checksum is filled in for ICMPv4. For ICMPv6 it covers a
/// pseudo-header with both addresses, which the kernel fills in on every
/// ICMPv6 socket (RFC 3542 §3.1), so it is left zero here.
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    out.push(0);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ident.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// An echo reply, as parsed from a received packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// The identifier (on an unprivileged socket, the kernel's choice).
    pub ident: u16,
    /// The sequence number.
    pub seq: u16,
    /// ICMP message bytes: header and payload.
    pub len: usize,
    /// The IPv4 time to live, when the IP header was received too.
    pub ttl: Option<u8>,
}

/// Parses an echo reply.
///
/// `with_ip_header` is for raw IPv4 sockets, which receive the IP header
/// in front of the ICMP message (it gives the TTL); datagram sockets and
/// IPv6 raw sockets receive the ICMP message alone. Returns `None` for
/// anything but a well-formed echo reply of the family: other ICMP types
/// (a raw socket sees every ICMP message, our own requests included on
/// loopback), truncated packets, and IPv4 messages whose checksum is wrong.
pub fn parse_echo_reply(v6: bool, with_ip_header: bool, packet: &[u8]) -> Option<EchoReply> {
    let (icmp, ttl) = if with_ip_header {
        let first = *packet.first()?;
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < 20 || packet.len() < header_len {
            return None;
        }
        (&packet[header_len..], Some(packet[8]))
    } else {
        (packet, None)
    };
    if icmp.len() < HEADER_LEN {
        return None;
    }
    let reply_type = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    if !v6 && checksum(icmp) != 0 {
        return None;
    }
    Some(EchoReply {
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        len: icmp.len(),
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc_1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (0x220d complemented).
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn a_request_with_its_checksum_sums_to_zero() {
        let mut packet = Vec::new();
        echo_request(false, 0x1234, 7, b"abcde", &mut packet);
        assert_eq!(&packet[..2], &[ECHO_REQUEST_V4, 0]);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&packet[8..], b"abcde");
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn a_v6_request_leaves_the_checksum_to_the_kernel() {
        let mut packet = vec![9; 3];
        echo_request(true, 1, 2, b"", &mut packet);
        assert_eq!(packet, [ECHO_REQUEST_V6, 0, 0, 0, 0, 1, 0, 2]);
    }

    fn reply_v4(seq: u16) -> Vec<u8> {
        let mut packet = Vec::new();
        echo_request(false, 0xbeef, seq, &[0x10; 56], &mut packet);
        packet[0] = ECHO_REPLY_V4;
        packet[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        packet
    }

    #[test]
    fn parses_a_reply_after_an_ip_header() {
        let mut ip = vec![
            0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend_from_slice(&reply_v4(3));
        assert_eq!(
            parse_echo_reply(false, true, &ip),
            Some(EchoReply {
                ident: 0xbeef,
                seq: 3,
                len: 64,
                ttl: Some(64)
            })
        );
        // Without the header flag the same bytes are not ICMP.
        assert_eq!(parse_echo_reply(false, false, &ip), None);
    }

    #[test]
    fn rejects_requests_bad_checksums_and_short_packets() {
        let good = reply_v4(1);
        assert!(parse_echo_reply(false, false, &good).is_some());
        let mut request = good.clone();
        request[0] = ECHO_REQUEST_V4;
        assert_eq!(parse_echo_reply(false, false, &request), None);
        let mut corrupt = good.clone();
        corrupt[10] ^= 0xff;
        assert_eq!(parse_echo_reply(false, false, &corrupt), None);
        assert_eq!(parse_echo_reply(false, false, &good[..7]), None);
        assert_eq!(parse_echo_reply(false, true, &[0x45, 0, 0]), None);
        assert_eq!(parse_echo_reply(false, true, &[0x60; 40]), None);
    }

    #[test]
    fn parses_a_v6_reply() {
        let packet = [ECHO_REPLY_V6, 0, 0xab, 0xcd, 0, 9, 1, 0, 1, 2, 3];
        assert_eq!(
            parse_echo_reply(true, false, &packet),
            Some(EchoReply {
                ident: 9,
                seq: 256,
                len: 11,
                ttl: None
            })
        );
        assert_eq!(parse_echo_reply(false, false, &packet), None);
    }
}
