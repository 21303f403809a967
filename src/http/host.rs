//! The `Host` header's value (RFC 9110 §7.2): `uri-host [ ":" port ]`, as
//! RFC 3986 §3.2.2 spells a host.
//!
//! ```text
//! Host       = uri-host [ ":" port ]
//! uri-host   = IP-literal / IPv4address / reg-name
//! IP-literal = "[" ( IPv6address / IPvFuture ) "]"
//! reg-name   = *( unreserved / pct-encoded / sub-delims )
//! port       = *DIGIT
//! ```
//!
//! RFC 9112 §3.2: a server MUST answer 400 to a request whose Host value
//! is invalid, since a proxy and the server could otherwise disagree on
//! which host the request is for.

/// Whether `value` (already stripped of surrounding whitespace) is a valid
/// `Host` value. An empty value is valid: it is what a request whose target
/// has no authority sends.
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                if !is_ip_literal(&value[1..end]) {
                    return false;
                }
                match &value[end + 1..] {
                    [] => return true,
                    [b':', port @ ..] => (&[][..], port),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        },
    };
    is_reg_name(host) && port.iter().all(u8::is_ascii_digit)
}

/// `reg-name`, which also covers `IPv4address`.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            // unreserved
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            // sub-delims
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            // pct-encoded
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 2;
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The inside of `[ … ]`: an IPv6 address, or `IPvFuture` (`"v" 1*HEXDIG
/// "." 1*( unreserved / sub-delims / ":" )`).
fn is_ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b == b':' || (b != b'%' && is_reg_name(&[b])));
    }
    std::str::from_utf8(inner).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_rfc_3986_allows_are_valid() {
        for host in [
            "",
            "localhost",
            "localhost:8888",
            "example.com",
            "example.com:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8888",
            "[2001:db8::7]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%20b",
            "sub-delims!$&'()*+,;=",
            "under_score.example~",
        ] {
            assert!(is_valid_host(host.as_bytes()), "{host:?}");
        }
    }

    #[test]
    fn hosts_rfc_3986_does_not_allow_are_invalid() {
        for host in [
            "a, b",
            "a b",
            "a/b",
            "a@b",
            "user@example.com",
            "example.com:80x",
            "example.com:80:80",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:80x",
            "[not-ipv6]",
            "[v1]",
            "[v.x]",
            "a%2",
            "a%zz",
            "a\tb",
            "a\"b",
            "exa\u{e9}mple.com",
            "a?b",
            "a#b",
            "[fe80::1%25en0]",
        ] {
            assert!(!is_valid_host(host.as_bytes()), "{host:?}");
        }
    }
}
