//! Conditional requests (RFC 9110 §13): validators for a static file,
//! evaluation of If-Match / If-Unmodified-Since / If-None-Match /
//! If-Modified-Since, If-Range, and IMF-fixdate formatting.
//!
//! Only decisions are made here; building the 304/412 responses and reading
//! file metadata happen in the caller.

use std::time::{SystemTime, UNIX_EPOCH};

use super::headers::trim_ows as trim;
use super::message::{Method, RequestHead};
use super::short_text::ShortText;

/// Validators of the selected representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Quoted entity-tag, e.g. `"5f3-1000-17a3b"` (may be `W/"..."`).
    pub etag: ShortText,
    pub last_modified: SystemTime,
}

/// Strong, quoted entity-tag from inode, size and modification time in
/// nanoseconds since the epoch: `"{inode:x}-{size:x}-{mtime_nanos:x}"`.
/// A pre-epoch mtime is hex-encoded as its 128-bit two's complement.
pub fn strong_etag(inode: u64, size: u64, mtime_nanos: i128) -> ShortText {
    // By hand rather than `format!`: one per file response, and `fmt` was most of its cost.
    // Each number is written backwards from the end of a stack buffer.
    fn put_hex(mut n: u128, out: &mut [u8], end: &mut usize) {
        loop {
            *end -= 1;
            out[*end] = b"0123456789abcdef"[(n & 0xf) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
    }
    let mut out = [0u8; 1 + 16 + 1 + 16 + 1 + 32 + 1];
    let mut at = out.len();
    at -= 1;
    out[at] = b'"';
    put_hex(mtime_nanos.cast_unsigned(), &mut out, &mut at);
    at -= 1;
    out[at] = b'-';
    put_hex(u128::from(size), &mut out, &mut at);
    at -= 1;
    out[at] = b'-';
    put_hex(u128::from(inode), &mut out, &mut at);
    at -= 1;
    out[at] = b'"';
    ShortText::copied(std::str::from_utf8(&out[at..]).expect("quotes, hex digits and dashes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve normally.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2 order:
/// 1. If-Match (strong comparison, `*` matches) false → `Failed`;
/// 2. else If-Unmodified-Since earlier than Last-Modified → `Failed`;
/// 3. If-None-Match (weak comparison, `*` matches) matches → `NotModified`
///    for GET/HEAD, else `Failed`;
/// 4. else, for GET/HEAD, If-Modified-Since at or after Last-Modified →
///    `NotModified`.
///
/// Dates compare at second precision. Unparseable dates, and date headers
/// sent more than once, are ignored. An entity-tag list that does not parse
/// matches nothing (so If-Match fails and If-None-Match is ignored).
pub fn evaluate(req: &RequestHead, v: &Validators) -> Precondition {
    let get_or_head = matches!(req.method, Method::Get | Method::Head);
    let modified = secs(v.last_modified);
    if req.header("if-match").is_some() {
        if !list_matches(req, "if-match", &v.etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(req, "if-unmodified-since")
        && modified > date
    {
        return Precondition::Failed;
    }
    if req.header("if-none-match").is_some() {
        if list_matches(req, "if-none-match", &v.etag, false) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head
        && let Some(date) = single_date(req, "if-modified-since")
        && modified <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// If-Range (RFC 9110 §13.1.5): should the Range header be honoured?
/// Absent → true. An entity-tag must match strongly (weak tags never match).
/// An HTTP-date must equal Last-Modified to the second, and Last-Modified
/// must be strong, i.e. not in the current second (RFC 9110 §8.8.2.2).
/// Anything else (malformed, repeated header) → false: send the full body.
pub fn if_range_allows(req: &RequestHead, v: &Validators) -> bool {
    if_range_allows_at(req, v, SystemTime::now())
}

pub(super) fn if_range_allows_at(req: &RequestHead, v: &Validators, now: SystemTime) -> bool {
    let mut values = req.headers_all("if-range");
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let value = trim(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (
            parse_tags(value).as_deref(),
            parse_tags(v.etag.as_bytes()).as_deref(),
        ) {
            (Some([theirs]), Some([ours])) => theirs.strong_eq(ours),
            _ => false,
        };
    }
    let modified = secs(v.last_modified);
    parse_date(value).is_some_and(|date| date == modified && secs(now) > modified)
}

/// IMF-fixdate, e.g. `"Sun, 06 Nov 1994 08:49:37 GMT"`.
pub fn http_date(t: SystemTime) -> String {
    http_date_text(t).into()
}

/// [`http_date`] held inline (no allocation), for a response's own headers.
pub fn http_date_text(t: SystemTime) -> ShortText {
    let mut out = [0u8; 29];
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= LAST_FOUR_DIGIT_SECOND => {
            write_http_date(d.as_secs(), &mut out);
            ShortText::copied(std::str::from_utf8(&out).expect("an IMF-fixdate is ASCII"))
        }
        // Outside what four year digits can say: httpdate decides (as before).
        _ => httpdate::fmt_http_date(t).into(),
    }
}

/// 9999-12-31T23:59:59Z, the last second an IMF-fixdate can write.
const LAST_FOUR_DIGIT_SECOND: u64 = 253_402_300_799;

/// Writes the IMF-fixdate of `secs` after the epoch (at most `LAST_FOUR_DIGIT_SECOND`)
/// into `out`: done by hand because this runs for every file response (Last-Modified),
/// where going through `fmt` cost more than the rest of the head together.
fn write_http_date(secs: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let second_of_day = secs % 86_400;
    // Civil date from days since 1970-01-01, counted in 400-year eras that start on
    // 0000-03-01 (so the leap day is the last day of an era's year).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(second_of_day / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(second_of_day / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(second_of_day % 60));
    out[25..].copy_from_slice(b" GMT");
}

/// Whole seconds since the epoch (negative before it).
fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    }
}

fn parse_date(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    httpdate::parse_http_date(s).ok().map(secs)
}

/// The date of a header that must appear exactly once.
fn single_date(req: &RequestHead, name: &str) -> Option<i64> {
    let mut values = req.headers_all(name);
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_date(trim(first))
}

/// Does an If-Match / If-None-Match list (all lines of `name`) match `etag`?
fn list_matches(req: &RequestHead, name: &str, etag: &str, strong: bool) -> bool {
    let Some(ours) = parse_tags(etag.as_bytes()).and_then(|t| t.into_iter().next()) else {
        return false;
    };
    let mut any = false;
    for value in req.headers_all(name) {
        let value = trim(value);
        if value == b"*" {
            return true;
        }
        let Some(tags) = parse_tags(value) else {
            return false;
        };
        any |= tags.iter().any(|t| {
            if strong {
                t.strong_eq(&ours)
            } else {
                t.opaque == ours.opaque
            }
        });
    }
    any
}

#[derive(Debug, Clone, Copy)]
struct Tag<'a> {
    weak: bool,
    /// Including the quotes.
    opaque: &'a [u8],
}

impl Tag<'_> {
    fn strong_eq(&self, other: &Tag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

/// `#entity-tag` (commas and OWS between, empty elements allowed). `None` on
/// any syntax error.
fn parse_tags(v: &[u8]) -> Option<Vec<Tag<'_>>> {
    let mut tags = Vec::new();
    let mut i = 0;
    loop {
        while i < v.len() && matches!(v[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i == v.len() {
            return Some(tags);
        }
        let weak = v[i..].starts_with(b"W/");
        if weak {
            i += 2;
        }
        if v.get(i) != Some(&b'"') {
            return None;
        }
        let len = v[i + 1..].iter().position(|&b| b == b'"')?;
        let end = i + 1 + len;
        let etagc = |b: &u8| *b == 0x21 || (0x23..=0x7e).contains(b) || *b >= 0x80;
        if !v[i + 1..end].iter().all(etagc) {
            return None;
        }
        tags.push(Tag {
            weak,
            opaque: &v[i..=end],
        });
        i = end + 1;
        while i < v.len() && matches!(v[i], b' ' | b'\t') {
            i += 1;
        }
        if i < v.len() && v[i] != b',' {
            return None;
        }
    }
}
