//! Accept-Encoding (RFC 9110 §12.5.3): which of the content codings ferry can serve
//! pre-compressed a client takes, and in what order. Pure: the caller says which codings a
//! location offers; opening the variant files happens in `route`.
//!
//! What the header means here:
//! - no header, or an empty one: identity only (the RFC lets a server send any coding to a
//!   client that sent no header; ferry, like nginx's `gzip_static`, does not);
//! - `coding;q=W`: tokens are case-insensitive, `x-gzip` is `gzip` (§8.4.1.3), `q=0` refuses;
//!   a coding listed twice takes the lower weight;
//! - `*` weighs every coding not listed by name (identity included);
//! - identity is the fallback whenever no acceptable variant exists (even when refused: the
//!   RFC lets a server disregard the header rather than answer 406), and it competes only when
//!   listed: a coding weighted below an explicit `identity` is not chosen;
//! - junk is ignored element by element: a bad token or q-value drops that element only.

/// A content coding a static location may serve pre-compressed (`precompressed = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    /// Brotli (RFC 7932), files named `NAME.br`.
    Br,
    /// Zstandard (RFC 8878), files named `NAME.zst`.
    Zstd,
    /// gzip (RFC 1952), files named `NAME.gz`.
    Gzip,
}

impl ContentCoding {
    pub const ALL: [ContentCoding; 3] =
        [ContentCoding::Br, ContentCoding::Zstd, ContentCoding::Gzip];

    /// The content-coding token (`Content-Encoding` value), also the config spelling.
    pub fn token(self) -> &'static str {
        match self {
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zstd",
            ContentCoding::Gzip => "gzip",
        }
    }

    /// What the pre-compressed file's name adds to the original's (nginx's and the usual
    /// build tools' spelling).
    pub fn suffix(self) -> &'static str {
        match self {
            ContentCoding::Br => ".br",
            ContentCoding::Zstd => ".zst",
            ContentCoding::Gzip => ".gz",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The weights a request gave, in thousandths (`q=0.5` is 500); `None`: not listed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AcceptEncoding {
    codings: [Option<u16>; 3],
    identity: Option<u16>,
    any: Option<u16>,
}

impl AcceptEncoding {
    /// Reads every Accept-Encoding field value of a request (a repeated field is one list).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> AcceptEncoding {
        let mut accept = AcceptEncoding::default();
        for value in values {
            for element in value.split(|&b| b == b',') {
                if let Some((token, weight)) = parse_element(element) {
                    accept.record(token, weight);
                }
            }
        }
        accept
    }

    fn record(&mut self, token: &[u8], weight: u16) {
        let slot = if token == b"*" {
            &mut self.any
        } else if token.eq_ignore_ascii_case(b"identity") {
            &mut self.identity
        } else if token.eq_ignore_ascii_case(b"x-gzip") {
            &mut self.codings[ContentCoding::Gzip.index()]
        } else {
            match ContentCoding::ALL
                .into_iter()
                .find(|c| token.eq_ignore_ascii_case(c.token().as_bytes()))
            {
                Some(coding) => &mut self.codings[coding.index()],
                None => return,
            }
        };
        *slot = Some(slot.map_or(weight, |seen| seen.min(weight)));
    }

    /// The weight of `coding`: as listed, else `*`'s, else 0 (not acceptable).
    pub fn weight(&self, coding: ContentCoding) -> u16 {
        self.codings[coding.index()].or(self.any).unwrap_or(0)
    }

    /// The codings of `offered` (the server's preference order) this request accepts, best
    /// first: higher weight first, ties in `offered` order; none weighted below an explicitly
    /// listed `identity`. Only the first three of `offered` count (a location offers each
    /// coding at most once).
    pub fn preferred(&self, offered: &[ContentCoding]) -> Codings {
        let floor = self.identity.unwrap_or(0).max(1);
        let mut found = Codings::default();
        for &coding in offered.iter().take(3) {
            let weight = self.weight(coding);
            if weight < floor {
                continue;
            }
            // Insertion after every entry weighing at least as much keeps ties in order.
            let at = found.items[..found.len]
                .iter()
                .position(|&(_, w)| w < weight)
                .unwrap_or(found.len);
            found.items.copy_within(at..found.len, at + 1);
            found.items[at] = (coding, weight);
            found.len += 1;
        }
        found
    }
}

/// Up to three codings, best first (see [`AcceptEncoding::preferred`]); `Copy`, so it can go
/// along to the blocking pool without an allocation.
#[derive(Debug, Clone, Copy)]
pub struct Codings {
    items: [(ContentCoding, u16); 3],
    len: usize,
}

impl Default for Codings {
    fn default() -> Codings {
        Codings {
            items: [(ContentCoding::Gzip, 0); 3],
            len: 0,
        }
    }
}

impl Codings {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = ContentCoding> + '_ {
        self.items[..self.len].iter().map(|&(coding, _)| coding)
    }

    /// Without the first `n`.
    pub fn skip(mut self, n: usize) -> Codings {
        let n = n.min(self.len);
        self.items.copy_within(n..self.len, 0);
        self.len -= n;
        self
    }
}

/// One list element, `token *( OWS ";" OWS name=value )`: the token and its weight
/// (1000 without `q`); `None` for an empty or malformed element.
fn parse_element(element: &[u8]) -> Option<(&[u8], u16)> {
    let mut parts = element.split(|&b| b == b';');
    let token = parts.next()?.trim_ascii();
    if token.is_empty() || !token.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let mut weight = 1000;
    for param in parts {
        let (name, value) = split_param(param.trim_ascii())?;
        if name.eq_ignore_ascii_case(b"q") {
            weight = parse_qvalue(value)?;
        }
        // Accept-Encoding defines no other parameter: ignored.
    }
    Some((token, weight))
}

fn split_param(param: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = param.iter().position(|&b| b == b'=')?;
    Some((param[..eq].trim_ascii(), param[eq + 1..].trim_ascii()))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(value: &[u8]) -> Option<u16> {
    let (&first, rest) = value.split_first()?;
    let fraction = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match first {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::ContentCoding::{Br, Gzip, Zstd};
    use super::*;

    fn parse(values: &[&str]) -> AcceptEncoding {
        AcceptEncoding::parse(values.iter().map(|v| v.as_bytes()))
    }

    fn pick(values: &[&str], offered: &[ContentCoding]) -> Vec<ContentCoding> {
        parse(values).preferred(offered).iter().collect()
    }

    const ALL: [ContentCoding; 3] = [Br, Zstd, Gzip];

    #[test]
    fn qvalues() {
        for (text, q) in [
            ("0", 0),
            ("0.", 0),
            ("0.5", 500),
            ("0.05", 50),
            ("0.001", 1),
            ("0.999", 999),
            ("1", 1000),
            ("1.", 1000),
            ("1.000", 1000),
        ] {
            assert_eq!(parse_qvalue(text.as_bytes()), Some(q), "{text}");
        }
        for bad in [
            "", "1.001", "2", "0.0001", ".5", "0,5", "-0", "0.5a", "1e0", " 1",
        ] {
            assert_eq!(parse_qvalue(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn without_a_header_or_with_an_empty_one_only_identity() {
        assert_eq!(pick(&[], &ALL), []);
        assert_eq!(pick(&[""], &ALL), []);
        assert_eq!(pick(&[" , ,"], &ALL), []);
    }

    #[test]
    fn listed_codings_in_the_servers_order_on_equal_q() {
        assert_eq!(pick(&["gzip, deflate, br, zstd"], &ALL), [Br, Zstd, Gzip]);
        assert_eq!(pick(&["gzip, deflate, br"], &[Gzip, Br]), [Gzip, Br]);
        assert_eq!(pick(&["gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["br"], &[Gzip]), []);
    }

    #[test]
    fn higher_q_first_and_q0_refuses() {
        assert_eq!(pick(&["br;q=0.5, gzip"], &[Br, Gzip]), [Gzip, Br]);
        assert_eq!(
            pick(&["br;q=0.5, gzip;q=0.8, zstd;q=0.9"], &ALL),
            [Zstd, Gzip, Br]
        );
        assert_eq!(pick(&["br;q=0, gzip"], &[Br, Gzip]), [Gzip]);
        assert_eq!(pick(&["br;q=0.000"], &[Br]), []);
        assert_eq!(pick(&["gzip;q=0.001"], &[Gzip]), [Gzip]);
    }

    #[test]
    fn case_spaces_and_x_gzip() {
        assert_eq!(pick(&["GZIP ; Q=0.5 ,BR"], &[Gzip, Br]), [Br, Gzip]);
        assert_eq!(pick(&["x-gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["\tbr\t;\tq=1\t"], &ALL), [Br]);
    }

    #[test]
    fn star_weighs_what_is_not_listed() {
        assert_eq!(pick(&["*"], &ALL), [Br, Zstd, Gzip]);
        assert_eq!(pick(&["*;q=0.5, gzip"], &ALL), [Gzip, Br, Zstd]);
        assert_eq!(pick(&["*;q=0, gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["br;q=0, *"], &ALL), [Zstd, Gzip]);
    }

    #[test]
    fn explicit_identity_competes() {
        assert_eq!(pick(&["identity;q=1, gzip;q=0.5"], &ALL), []);
        assert_eq!(
            pick(&["identity;q=0.5, gzip;q=0.5, br;q=0.4"], &ALL),
            [Gzip]
        );
        assert_eq!(pick(&["identity;q=0, gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["identity"], &ALL), []);
    }

    #[test]
    fn repeated_fields_and_codings() {
        assert_eq!(pick(&["gzip", "br"], &ALL), [Br, Gzip]);
        assert_eq!(pick(&["gzip, gzip;q=0"], &ALL), []);
        assert_eq!(
            pick(&["br;q=0.2", "br;q=0.9, gzip;q=0.5"], &ALL),
            [Gzip, Br]
        );
    }

    #[test]
    fn junk_drops_its_element_only() {
        assert_eq!(pick(&["br;q=2, gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["br;q=, gzip;q=abc, zstd"], &ALL), [Zstd]);
        assert_eq!(pick(&["b r, gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["br;level, gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["br;foo=bar"], &ALL), [Br]);
        assert_eq!(pick(&[";q=1, \"gzip\", gzip"], &ALL), [Gzip]);
        assert_eq!(pick(&["\u{e9}br, br"], &ALL), [Br]);
    }

    #[test]
    fn skipping_the_tried_ones() {
        let picked = parse(&["gzip, br;q=0.5, zstd"]).preferred(&ALL);
        assert_eq!(picked.iter().collect::<Vec<_>>(), [Zstd, Gzip, Br]);
        assert_eq!(picked.skip(1).iter().collect::<Vec<_>>(), [Gzip, Br]);
        assert_eq!(picked.skip(2).iter().collect::<Vec<_>>(), [Br]);
        assert!(picked.skip(3).is_empty() && picked.skip(9).is_empty());
    }

    #[test]
    fn weight_of_each_coding() {
        let accept = parse(&["gzip;q=0.3, *;q=0.1"]);
        assert_eq!(accept.weight(Gzip), 300);
        assert_eq!(accept.weight(Br), 100);
        assert_eq!(parse(&["gzip"]).weight(Br), 0);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(value in proptest::prelude::any::<Vec<u8>>()) {
            let accept = AcceptEncoding::parse([value.as_slice()]);
            let picked = accept.preferred(&ALL);
            proptest::prop_assert!(picked.iter().count() <= 3);
        }
    }
}
