//! Request bodies: how long they are, and skipping them as their bytes
//! arrive so that the bytes after a body are read as the next request.
//!
//! A body whose end is misjudged is how requests are smuggled: whatever
//! the server takes as the end of one request starts the next. So the
//! chunked framing (RFC 9112 §7.1) is read to the letter, by a scanner of
//! our own rather than `httparse::parse_chunk_size`, which takes a
//! chunk-size line with no digit at all as the last chunk and lets any
//! byte, bare LF included, into an extension:
//!
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size      = 1*HEXDIG
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext       = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name  = token
//! chunk-ext-val   = token / quoted-string
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! Every scanner here reads left to right and decides at the first byte
//! that breaks the grammar; running out of bytes is never an error. So the
//! verdict on a byte stream is the same however it is split into reads.

use super::{is_tchar, RequestError};

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// `Content-Length: N`, or no body (0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The most bytes a trailer section may hold, as a request head may.
const MAX_TRAILER_BYTES: usize = 8192;
/// Sixteen hex digits fill a `u64`; a longer size (leading zeros aside)
/// overflows.
const MAX_SIZE_DIGITS: usize = 16;

/// Skips a request body as its bytes arrive, so that the bytes after it are
/// read as the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySkipper {
    /// This many bytes of a `Content-Length` body are left.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of chunk data are left.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data.
    ChunkDataEnd,
    /// Expecting trailer lines or the final blank line; `seen` trailer
    /// bytes so far.
    Trailer {
        /// Bytes of trailer fields already skipped.
        seen: usize,
    },
    /// The body is over.
    Done,
}

impl BodySkipper {
    /// The skipper for a body of this length.
    pub fn new(body: BodyLength) -> Self {
        match body {
            BodyLength::Length(0) => BodySkipper::Done,
            BodyLength::Length(n) => BodySkipper::Length(n),
            BodyLength::Chunked => BodySkipper::ChunkSize,
        }
    }

    /// Consumes as much of the body as `buf` holds and returns how many
    /// bytes were body; check [`BodySkipper::is_done`] afterwards. Bytes
    /// not consumed must be offered again, with more after them.
    ///
    /// # Errors
    ///
    /// [`RequestError::BadRequest`] when the chunked framing breaks RFC
    /// 9112 §7.1 anywhere: a size with no digit or too many, whitespace not
    /// followed by `;`, a bare LF or a control character in an extension
    /// or trailer, chunk data not followed by CRLF, a line over the limit.
    pub fn skip(&mut self, buf: &[u8]) -> Result<usize, RequestError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match *self {
                BodySkipper::Done => return Ok(pos),
                BodySkipper::Length(n) | BodySkipper::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    pos += take as usize;
                    let left = n - take;
                    *self = match (*self, left) {
                        (BodySkipper::Length(_), 0) => BodySkipper::Done,
                        (BodySkipper::Length(_), _) => BodySkipper::Length(left),
                        (_, 0) => BodySkipper::ChunkDataEnd,
                        _ => BodySkipper::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok(pos);
                    }
                }
                BodySkipper::ChunkSize => match chunk_size_line(rest)? {
                    Some((used, 0)) => {
                        pos += used;
                        *self = BodySkipper::Trailer { seen: 0 };
                    }
                    Some((used, size)) => {
                        pos += used;
                        *self = BodySkipper::ChunkData(size);
                    }
                    None => return Ok(pos),
                },
                BodySkipper::ChunkDataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        *self = BodySkipper::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(pos),
                    _ => return Err(RequestError::BadRequest),
                },
                BodySkipper::Trailer { seen } => match trailer_line(rest)? {
                    Some(Trailer::End(used)) => {
                        pos += used;
                        *self = BodySkipper::Done;
                    }
                    Some(Trailer::Field(used)) => {
                        let seen = seen + used;
                        if seen > MAX_TRAILER_BYTES {
                            return Err(RequestError::BadRequest);
                        }
                        pos += used;
                        *self = BodySkipper::Trailer { seen };
                    }
                    None if seen + rest.len() > MAX_TRAILER_BYTES => {
                        return Err(RequestError::BadRequest)
                    }
                    None => return Ok(pos),
                },
            }
        }
    }

    /// Whether the whole body has been skipped.
    pub fn is_done(&self) -> bool {
        *self == BodySkipper::Done
    }
}

/// Reads a chunk-size line, `chunk-size [ chunk-ext ] CRLF`, at the start
/// of `buf`: `Some((line length, size))`, or `None` while the line is
/// incomplete.
///
/// # Errors
///
/// `BadRequest` at the first byte the grammar does not allow there, or
/// once an incomplete line is longer than 4 KiB.
pub fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, RequestError> {
    let mut scan = Scan::new(buf);
    let size = match scan.chunk_size_line() {
        Step::Done(size) => size,
        Step::More if buf.len() < MAX_CHUNK_LINE => return Ok(None),
        Step::More | Step::Bad => return Err(RequestError::BadRequest),
    };
    if scan.pos > MAX_CHUNK_LINE {
        return Err(RequestError::BadRequest);
    }
    Ok(Some((scan.pos, size)))
}

/// One line of a trailer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailer {
    /// A field line of this many bytes, CRLF included.
    Field(usize),
    /// The blank line that ends the body (2 bytes).
    End(usize),
}

/// Reads one trailer line: a `field-line CRLF` (RFC 9112 §5: `token ":"
/// OWS field-value OWS`, no obs-fold) or the final CRLF.
fn trailer_line(buf: &[u8]) -> Result<Option<Trailer>, RequestError> {
    let mut scan = Scan::new(buf);
    match scan.trailer_line() {
        Step::Done(true) => Ok(Some(Trailer::End(scan.pos))),
        Step::Done(false) if scan.pos <= MAX_CHUNK_LINE => Ok(Some(Trailer::Field(scan.pos))),
        Step::More if buf.len() < MAX_CHUNK_LINE => Ok(None),
        _ => Err(RequestError::BadRequest),
    }
}

/// The outcome of one grammar rule.
#[derive(Debug, PartialEq, Eq)]
enum Step<T> {
    Done(T),
    /// The bytes ran out before the rule ended.
    More,
    /// A byte the rule does not allow.
    Bad,
}

/// Propagates `More` and `Bad` from a sub-rule.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Step::Done(v) => v,
            Step::More => return Step::More,
            Step::Bad => return Step::Bad,
        }
    };
}

/// A cursor over the bytes of one line.
struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Scan { buf, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next byte, or `More` at the end of the bytes.
    fn next(&mut self) -> Step<u8> {
        match self.peek() {
            Some(b) => {
                self.pos += 1;
                Step::Done(b)
            }
            None => Step::More,
        }
    }

    /// Skips `BWS`/`OWS` (`*( SP / HTAB )`); says whether any was there.
    fn whitespace(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `CRLF`, with the CR already read.
    fn lf(&mut self) -> Step<()> {
        match step!(self.next()) {
            b'\n' => Step::Done(()),
            _ => Step::Bad,
        }
    }

    /// `1*tchar`.
    fn token(&mut self) -> Step<()> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.peek() {
            None => Step::More,
            Some(_) if self.pos == start => Step::Bad,
            Some(_) => Step::Done(()),
        }
    }

    /// `quoted-string` (RFC 9110 §5.6.4), at its opening `"`.
    fn quoted_string(&mut self) -> Step<()> {
        self.pos += 1;
        loop {
            match step!(self.next()) {
                b'"' => return Step::Done(()),
                b'\\' => match step!(self.next()) {
                    b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                    _ => return Step::Bad,
                },
                b'\t' | b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' | 0x80..=0xff => {}
                _ => return Step::Bad,
            }
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF`, returning the size.
    fn chunk_size_line(&mut self) -> Step<u64> {
        let mut size: u64 = 0;
        let mut digits = 0;
        let mut significant = 0;
        while let Some(d) = self.peek().and_then(|b| char::from(b).to_digit(16)) {
            self.pos += 1;
            digits += 1;
            if significant > 0 || d != 0 {
                significant += 1;
                if significant > MAX_SIZE_DIGITS {
                    return Step::Bad;
                }
            }
            size = size << 4 | u64::from(d);
        }
        if digits == 0 {
            // 1*HEXDIG: a line without a digit is no chunk-size, and never
            // the last chunk.
            return if self.peek().is_none() {
                Step::More
            } else {
                Step::Bad
            };
        }
        // chunk-ext: whitespace is allowed only before `;` and `=`.
        loop {
            let spaced = self.whitespace();
            match step!(self.next()) {
                b'\r' if !spaced => {
                    step!(self.lf());
                    return Step::Done(size);
                }
                b';' => {
                    self.whitespace();
                    step!(self.token());
                    let spaced = self.whitespace();
                    match self.peek() {
                        None => return Step::More,
                        Some(b'=') => {
                            self.pos += 1;
                            self.whitespace();
                            match self.peek() {
                                None => return Step::More,
                                Some(b'"') => step!(self.quoted_string()),
                                Some(_) => step!(self.token()),
                            }
                        }
                        Some(b';') => {}
                        Some(b'\r') if !spaced => {}
                        Some(_) => return Step::Bad,
                    }
                }
                _ => return Step::Bad,
            }
        }
    }

    /// A trailer line: `Done(true)` for the final CRLF, `Done(false)` for a
    /// field line.
    fn trailer_line(&mut self) -> Step<bool> {
        if self.peek() == Some(b'\r') {
            self.pos += 1;
            step!(self.lf());
            return Step::Done(true);
        }
        // A line starting with whitespace would be obs-fold: refused.
        step!(self.token());
        match step!(self.next()) {
            b':' => {}
            _ => return Step::Bad,
        }
        loop {
            match step!(self.next()) {
                b'\r' => {
                    step!(self.lf());
                    return Step::Done(false);
                }
                b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                _ => return Step::Bad,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::Escaped;

    fn skip_all(body: BodyLength, input: &[u8], split: usize) -> (BodySkipper, usize) {
        let mut skipper = BodySkipper::new(body);
        let first = skipper.skip(&input[..split]).unwrap();
        // A real reader keeps unconsumed bytes and appends the next read.
        let second = skipper.skip(&input[first..]).unwrap();
        (skipper, first + second)
    }

    /// Feeds `input` one byte more at a time, as a client writing a byte
    /// per packet would, keeping what was not consumed.
    fn skip_bytewise(input: &[u8]) -> Result<(BodySkipper, usize), RequestError> {
        let mut skipper = BodySkipper::new(BodyLength::Chunked);
        let mut used = 0;
        for end in 1..=input.len() {
            used += skipper.skip(&input[used..end])?;
            if skipper.is_done() {
                break;
            }
        }
        Ok((skipper, used))
    }

    #[test]
    fn chunked_bodies_are_skipped_at_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nGET";
        let body_len = body.len() - 3;
        for split in 0..=body.len() {
            let (skipper, used) = skip_all(BodyLength::Chunked, body, split);
            assert!(skipper.is_done(), "split {split}: {skipper:?}");
            assert_eq!(used, body_len, "split {split}");
        }
    }

    #[test]
    fn length_bodies_stop_at_their_end() {
        let (skipper, used) = skip_all(BodyLength::Length(5), b"helloGET /", 2);
        assert!(skipper.is_done());
        assert_eq!(used, 5);
    }

    /// Chunked bodies RFC 9112 §7.1 allows, with the number of body bytes.
    const VALID: &[&[u8]] = &[
        b"0\r\n\r\n",
        b"000\r\n\r\n",
        b"a\r\n0123456789\r\n0\r\n\r\n",
        b"A\r\n0123456789\r\n0\r\n\r\n",
        b"00000000000000001\r\nx\r\n0\r\n\r\n",
        b"1;name\r\nx\r\n0\r\n\r\n",
        b"1;name=value\r\nx\r\n0\r\n\r\n",
        b"1 ; name = value ; other\r\nx\r\n0\r\n\r\n",
        b"1;name=\"quoted \\\" \\\\ value\"\r\nx\r\n0\r\n\r\n",
        b"1;a;b=c;d=\"e\"\r\nx\r\n0;last=1\r\n\r\n",
        b"1\r\nx\r\n0\r\nTrailer: value\r\nOther:\r\n\r\n",
        b"1\r\nx\r\n0\r\nT:\tv \t v\r\n\r\n",
        b"ffffffffffffffff\r\n",
    ];

    #[test]
    fn valid_chunked_bodies_are_read_whole_and_bytewise() {
        for body in VALID {
            let whole = BodySkipper::new(BodyLength::Chunked).skip(body);
            assert!(whole.is_ok(), "{}: {whole:?}", Escaped::new(body));
            let bytewise = skip_bytewise(body);
            assert!(bytewise.is_ok(), "{}: {bytewise:?}", Escaped::new(body));
        }
    }

    /// Chunk framing that breaks RFC 9112 §7.1; the sources are the cases
    /// of the conformance run that found the hole (a size line with no
    /// digit read as the last chunk) and llhttp's `test/request/invalid.md`
    /// and `transfer-encoding.md` chunk cases.
    const INVALID: &[&[u8]] = &[
        // No digit: `\r\n`, ` \r\n`, `;ext\r\n` were all taken as size 0.
        b"\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        b" \r\n\r\n",
        b";ext\r\n\r\n",
        b"\t0\r\n\r\n",
        b"-1\r\n",
        b"+1\r\nx\r\n",
        b"0x1\r\nx\r\n",
        b"zz\r\n",
        // Overflow: 17 significant digits.
        b"10000000000000000\r\n",
        // Whitespace not followed by `;`.
        b"1 \r\nx\r\n0\r\n\r\n",
        b"0 \r\n\r\n",
        b"1;a \r\nx\r\n",
        b"1;a=b \r\nx\r\n",
        // Bare LF: as the line end, and inside an extension.
        b"1\nx\r\n0\r\n\r\n",
        b"0\n\r\n",
        b"1;a\nb\r\nx\r\n",
        b"1;a=\"b\nc\"\r\nx\r\n",
        // Other CTLs in an extension.
        b"1;a\x00\r\nx\r\n",
        b"1;a=\x01\r\nx\r\n",
        b"1;a=\"\x7f\"\r\nx\r\n",
        b"1;\r\nx\r\n",
        b"1;=v\r\nx\r\n",
        b"1;a=\r\nx\r\n",
        b"1;a=\"unterminated\r\nx\r\n",
        // A bare CR.
        b"1\rx\r\n",
        // Chunk data not followed by CRLF.
        b"2\r\nabXY",
        b"2\r\nab\n0\r\n\r\n",
        b"1\r\nxx\r\n0\r\n\r\n",
        // Trailer lines: obs-fold, no colon, bare LF, CTL, space before colon.
        b"0\r\nT: v\r\n folded\r\n\r\n",
        b"0\r\n folded\r\n\r\n",
        b"0\r\nno colon\r\n\r\n",
        b"0\r\nT: v\n\r\n",
        b"0\r\nT: v\x00\r\n\r\n",
        b"0\r\nT : v\r\n\r\n",
        b"0\r\n\n",
    ];

    #[test]
    fn broken_chunk_framing_is_a_bad_request_whole_and_bytewise() {
        for body in INVALID {
            let whole = BodySkipper::new(BodyLength::Chunked).skip(body);
            assert_eq!(
                whole,
                Err(RequestError::BadRequest),
                "whole: {}",
                Escaped::new(body)
            );
            let bytewise = skip_bytewise(body);
            assert_eq!(
                bytewise.map(|_| ()),
                Err(RequestError::BadRequest),
                "bytewise: {}",
                Escaped::new(body)
            );
        }
    }

    #[test]
    fn a_size_line_without_a_digit_is_never_the_last_chunk() {
        // The smuggling case: `3\r\nfoo\r\n` then `\r\n` where a size belongs.
        let mut skipper = BodySkipper::new(BodyLength::Chunked);
        let used = skipper.skip(b"3\r\nfoo\r\n").unwrap();
        assert_eq!(used, 8);
        assert_eq!(
            skipper.skip(b"\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(RequestError::BadRequest)
        );
    }

    #[test]
    fn an_incomplete_line_waits_until_the_line_limit() {
        assert_eq!(chunk_size_line(b"1"), Ok(None));
        assert_eq!(chunk_size_line(b"1;a"), Ok(None));
        assert_eq!(chunk_size_line(b"1;a=\"b"), Ok(None));
        assert_eq!(chunk_size_line(b"1\r"), Ok(None));
        let long = [b"1;a=".as_slice(), &[b'b'; MAX_CHUNK_LINE]].concat();
        assert_eq!(chunk_size_line(&long), Err(RequestError::BadRequest));
        assert_eq!(chunk_size_line(b"1f;x=y\r\nrest"), Ok(Some((8, 31))));
    }

    /// A valid chunked body from parts: chunk sizes, an extension per
    /// chunk, trailer lines.
    fn chunked(sizes: &[usize], exts: &[usize], trailers: usize) -> Vec<u8> {
        const EXTS: [&str; 4] = ["", ";a", ";a=b", " ; q=\"x y\""];
        let mut body = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let ext = EXTS[exts.get(i).copied().unwrap_or(0) % EXTS.len()];
            body.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'd', size));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n");
        for i in 0..trailers {
            body.extend_from_slice(format!("T{i}: v\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_a_valid_body_ends_it_at_the_same_byte(
            sizes in proptest::collection::vec(1usize..300, 0..6),
            exts in proptest::collection::vec(0usize..4, 0..6),
            trailers in 0usize..3,
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let body = chunked(&sizes, &exts, trailers);
            let stream = [body.as_slice(), b"GET / HTTP/1.1\r\n"].concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let split = crate::fuzzing::read_chunked(&stream, &cuts);
            proptest::prop_assert_eq!(split, Ok((true, body.len())));
        }

        #[test]
        fn the_verdict_on_any_bytes_does_not_depend_on_the_split(
            bytes in proptest::collection::vec(proptest::sample::select(
                b"0123456789abcdefABCDEFxz;= \t\"\\:\r\n\x00\x7f".to_vec()), 0..80),
            cuts in proptest::collection::vec(0usize..80, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let whole = crate::fuzzing::read_chunked(&bytes, &[]);
            proptest::prop_assert_eq!(crate::fuzzing::read_chunked(&bytes, &cuts), whole);
        }
    }

    #[test]
    fn a_trailer_section_is_bounded() {
        let mut skipper = BodySkipper::new(BodyLength::Chunked);
        skipper.skip(b"0\r\n").unwrap();
        let line = b"X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut result = Ok(0);
        for _ in 0..(MAX_TRAILER_BYTES / line.len() + 2) {
            result = skipper.skip(line);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(RequestError::BadRequest));
    }
}
