//! A request head as HTTP/2 carries it, checked against RFC 9113 §8.2 and §8.3 while HPACK
//! decodes it: `HeadBuilder` takes the fields one by one (it is the decoder's callback),
//! remembers the first rule broken, and `finish` gives the validated `Head` or the reason the
//! stream is reset. `TrailerCheck` does the same for trailers, which are dropped.
//!
//! A `Head` is one byte buffer plus positions: two allocations per request.

/// Where a piece of the head sits in its buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    end: u32,
}

/// A regular field: name is `buf[start..mid]`, value `buf[mid..end]`.
#[derive(Clone, Copy, Debug)]
struct Field {
    start: u32,
    mid: u32,
    end: u32,
}

/// A request's head, validated (see the module doc).
#[derive(Debug)]
pub struct Head {
    buf: Vec<u8>,
    fields: Vec<Field>,
    method: Span,
    scheme: Span,
    path: Span,
    authority: Option<Span>,
    protocol: Option<Span>,
    content_length: Option<u64>,
}

impl Head {
    fn at(&self, s: Span) -> &[u8] {
        &self.buf[s.start as usize..s.end as usize]
    }

    pub fn method(&self) -> &[u8] {
        self.at(self.method)
    }

    /// `b""` for CONNECT.
    pub fn scheme(&self) -> &[u8] {
        self.at(self.scheme)
    }

    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.map(|s| self.at(s))
    }

    /// `b""` for CONNECT.
    pub fn path(&self) -> &[u8] {
        self.at(self.path)
    }

    /// `:protocol` (extended CONNECT, RFC 8441); ferry does not announce it and refuses it.
    pub fn protocol(&self) -> Option<&[u8]> {
        self.protocol.map(|s| self.at(s))
    }

    /// Regular fields in order (cookie fields as sent: the driver joins them).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|f| {
            (
                &self.buf[f.start as usize..f.mid as usize],
                &self.buf[f.mid as usize..f.end as usize],
            )
        })
    }

    /// The `content-length` field's value, already checked to be digits (and the same in
    /// every copy); the core holds the DATA total to it (§8.1.1).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Bytes and regular fields this head holds: a size hint for the next one.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.buf.len(), self.fields.len())
    }
}

/// Collects a head's fields from the HPACK decoder and checks them as they come.
#[derive(Debug, Default)]
pub(crate) struct HeadBuilder {
    buf: Vec<u8>,
    fields: Vec<Field>,
    method: Option<Span>,
    scheme: Option<Span>,
    path: Option<Span>,
    authority: Option<Span>,
    protocol: Option<Span>,
    content_length: Option<u64>,
    regular_seen: bool,
    error: Option<&'static str>,
}

impl HeadBuilder {
    /// A builder whose buffers are allocated once at these sizes when the head fits them
    /// (the connection passes what its previous request needed, with some room).
    pub(crate) fn with_capacity(bytes: usize, fields: usize) -> HeadBuilder {
        HeadBuilder {
            buf: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
            ..HeadBuilder::default()
        }
    }

    /// One decoded field.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.take(name, value) {
            self.error = Some(e);
        }
    }

    fn store(&mut self, bytes: &[u8]) -> Span {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(bytes);
        Span {
            start,
            end: self.buf.len() as u32,
        }
    }

    fn take(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        check_value(value)?;
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen {
                return Err("pseudo-field after a regular field");
            }
            let slot = match pseudo {
                b"method" => &mut self.method,
                b"scheme" => &mut self.scheme,
                b"path" => &mut self.path,
                b"authority" => &mut self.authority,
                b"protocol" => &mut self.protocol,
                _ => return Err("unknown pseudo-field"),
            };
            if slot.is_some() {
                return Err("repeated pseudo-field");
            }
            let span = self.store(value);
            match pseudo {
                b"method" => self.method = Some(span),
                b"scheme" => self.scheme = Some(span),
                b"path" => self.path = Some(span),
                b"authority" => self.authority = Some(span),
                _ => self.protocol = Some(span),
            }
            return Ok(());
        }
        self.regular_seen = true;
        check_regular(name, value)?;
        if name == b"content-length" {
            let n = parse_length(value).ok_or("bad content-length")?;
            if self.content_length.is_some_and(|m| m != n) {
                return Err("conflicting content-length");
            }
            self.content_length = Some(n);
        }
        let start = self.buf.len() as u32;
        let mid = self.store(name).end;
        let end = self.store(value).end;
        self.fields.push(Field { start, mid, end });
        Ok(())
    }

    /// The validated head, or why the request is malformed.
    pub(crate) fn finish(self) -> Result<Head, &'static str> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let method = self.method.ok_or("no :method")?;
        let is_connect = &self.buf[method.start as usize..method.end as usize] == b"CONNECT";
        let empty = Span::default();
        let (scheme, path) = if is_connect && self.protocol.is_none() {
            // RFC 9113 §8.5: CONNECT names only the authority.
            if self.scheme.is_some() || self.path.is_some() {
                return Err(":scheme or :path in CONNECT");
            }
            if self.authority.is_none() {
                return Err("CONNECT without :authority");
            }
            (empty, empty)
        } else {
            if self.protocol.is_some() && !is_connect {
                return Err(":protocol without CONNECT");
            }
            let scheme = self.scheme.ok_or("no :scheme")?;
            let path = self.path.ok_or("no :path")?;
            if path.start == path.end {
                return Err("empty :path");
            }
            (scheme, path)
        };
        Ok(Head {
            buf: self.buf,
            fields: self.fields,
            method,
            scheme,
            path,
            authority: self.authority,
            protocol: self.protocol,
            content_length: self.content_length,
        })
    }
}

/// Checks trailers (no pseudo-fields, the regular-field rules); they are not kept.
#[derive(Debug, Default)]
pub(crate) struct TrailerCheck {
    pub(crate) error: Option<&'static str>,
}

impl TrailerCheck {
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_none() {
            let r = if name.first() == Some(&b':') {
                Err("pseudo-field in trailers")
            } else {
                check_value(value).and_then(|()| check_regular(name, value))
            };
            self.error = r.err();
        }
    }
}

/// A regular field's name (§8.2.1: lowercase, no controls, separators or non-ASCII ... as
/// tokens go, no SP and no `:`) and what §8.2.2 forbids.
fn check_regular(name: &[u8], value: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty field name");
    }
    if name
        .iter()
        .any(|&b| b <= 0x20 || b >= 0x7f || b.is_ascii_uppercase() || b == b':')
    {
        return Err("bad field name");
    }
    match name {
        b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding" | b"upgrade" => {
            Err("connection-specific field")
        }
        b"te" if value != b"trailers" => Err("te other than trailers"),
        _ => Ok(()),
    }
}

/// A field value (§8.2.1): no NUL, CR or LF, no leading or trailing SP or HTAB.
fn check_value(value: &[u8]) -> Result<(), &'static str> {
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err("bad field value");
    }
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if ws(value.first()) || ws(value.last()) {
        return Err("field value with surrounding whitespace");
    }
    Ok(())
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(fields: &[(&str, &str)]) -> Result<Head, &'static str> {
        let mut b = HeadBuilder::with_capacity(64, 4);
        for (n, v) in fields {
            b.push(n.as_bytes(), v.as_bytes());
        }
        b.finish()
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b"),
    ];

    #[test]
    fn a_plain_request_keeps_its_fields_in_order() {
        let mut f = GET.to_vec();
        f.extend([("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")]);
        f.push(("content-length", "12"));
        let h = build(&f).unwrap();
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.scheme(), b"https");
        assert_eq!(h.authority(), Some(&b"example.com"[..]));
        assert_eq!(h.path(), b"/a?b");
        assert_eq!(h.protocol(), None);
        assert_eq!(h.content_length(), Some(12));
        let fields: Vec<_> = h.fields().collect();
        assert_eq!(
            fields,
            [
                (&b"cookie"[..], &b"a=1"[..]),
                (b"accept", b"*/*"),
                (b"cookie", b"b=2"),
                (b"content-length", b"12")
            ]
        );
    }

    #[test]
    fn connect_names_only_the_authority() {
        let h = build(&[(":method", "CONNECT"), (":authority", "h:443")]).unwrap();
        assert_eq!((h.scheme(), h.path()), (&b""[..], &b""[..]));
        assert!(build(&[(":method", "CONNECT")]).is_err());
        assert!(build(&[(":method", "CONNECT"), (":authority", "h"), (":path", "/")]).is_err());
    }

    #[test]
    fn malformed_heads_are_refused() {
        let bad: &[&[(&str, &str)]] = &[
            &[(":method", "GET"), (":scheme", "https")],
            &[(":method", "GET"), (":path", "/")],
            &[(":scheme", "https"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "https"), (":path", "")],
            &[
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                (":status", "200"),
            ],
            &[
                (":method", "GET"),
                ("a", "b"),
                (":scheme", "h"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("Accept", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("connection", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("upgrade", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("a", " x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("a", "x\r\ny"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                ("content-length", "x"),
            ],
            &[
                (":method", "POST"),
                (":scheme", "h"),
                (":path", "/"),
                ("content-length", "1"),
                ("content-length", "2"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "h"),
                (":path", "/"),
                (":protocol", "ws"),
            ],
        ];
        for fields in bad {
            assert!(build(fields).is_err(), "{fields:?} was accepted");
        }
        let mut ok = GET.to_vec();
        ok.push(("te", "trailers"));
        assert!(build(&ok).is_ok());
    }

    #[test]
    fn trailers_take_no_pseudo_fields() {
        let mut t = TrailerCheck::default();
        t.push(b"x-sum", b"1");
        assert_eq!(t.error, None);
        t.push(b":path", b"/");
        assert!(t.error.is_some());
    }
}
