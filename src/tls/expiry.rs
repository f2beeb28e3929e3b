//! When a certificate expires: its `notAfter`, read from the DER by a walk of the few fields
//! in front of it, for the `ferry_tls_certificate_expiry_timestamp_seconds` gauge.
//!
//! Why a walk and not a crate: rustls-webpki checks validity but does not hand out the
//! date, and an X.509 parser (x509-parser and its ASN.1 stack) would be a dozen crates for
//! six fields. The certificate has already been parsed by rustls when it gets here; anything
//! this walk cannot read is an error, never a panic.
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE {
//!     version [0] EXPLICIT OPTIONAL, serialNumber INTEGER, signature AlgorithmIdentifier,
//!     issuer Name, validity SEQUENCE { notBefore Time, notAfter Time }, ... }
//! Time ::= UTCTime "YYMMDDHHMMSSZ" | GeneralizedTime "YYYYMMDDHHMMSSZ"   (RFC 5280 §4.1.2.5)
//! ```

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The certificate's `notAfter` in seconds since the Unix epoch.
pub fn not_after(der: &[u8]) -> Result<i64, &'static str> {
    let (certificate, _) = expect(der, SEQUENCE, "certificate")?;
    let (mut tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate")?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs)?.2;
    }
    let (_, rest) = expect(tbs, INTEGER, "serialNumber")?;
    let (_, rest) = expect(rest, SEQUENCE, "signature algorithm")?;
    let (_, rest) = expect(rest, SEQUENCE, "issuer")?;
    let (validity, _) = expect(rest, SEQUENCE, "validity")?;
    let (_, _, rest) = element(validity)?;
    let (tag, time, _) = element(rest)?;
    match tag {
        UTC_TIME => utc_time(time),
        GENERALIZED_TIME => generalized_time(time),
        _ => Err("notAfter: not a UTCTime or GeneralizedTime"),
    }
}

/// The contents of the element at the start of `der` if its tag is `tag`, and what follows.
fn expect<'a>(
    der: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), &'static str> {
    let (found, contents, rest) = element(der)?;
    if found != tag {
        return Err(what);
    }
    Ok((contents, rest))
}

/// The tag, contents and rest of the DER element at the start of `der` (definite lengths
/// only, as DER requires; up to 4 length bytes).
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    const TRUNCATED: &str = "truncated DER";
    let (&tag, rest) = der.split_first().ok_or(TRUNCATED)?;
    let (&first, mut rest) = rest.split_first().ok_or(TRUNCATED)?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let bytes = rest.get(..count).ok_or(TRUNCATED)?;
            rest = &rest[count..];
            bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b))
        }
        _ => return Err("unsupported DER length"),
    };
    let contents = rest.get(..len).ok_or(TRUNCATED)?;
    Ok((tag, contents, &rest[len..]))
}

/// `YYMMDDHHMMSSZ`; years 50..=99 are 19xx, 00..=49 are 20xx (RFC 5280 §4.1.2.5.1).
fn utc_time(text: &[u8]) -> Result<i64, &'static str> {
    let [y @ .., b'Z'] = text else {
        return Err("UTCTime: not YYMMDDHHMMSSZ");
    };
    if y.len() != 12 {
        return Err("UTCTime: not YYMMDDHHMMSSZ");
    }
    let yy = digits(&y[..2])?;
    let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
    civil_seconds(year, &y[2..])
}

/// `YYYYMMDDHHMMSSZ` (no fractions, as RFC 5280 §4.1.2.5.2 requires).
fn generalized_time(text: &[u8]) -> Result<i64, &'static str> {
    let [y @ .., b'Z'] = text else {
        return Err("GeneralizedTime: not YYYYMMDDHHMMSSZ");
    };
    if y.len() != 14 {
        return Err("GeneralizedTime: not YYYYMMDDHHMMSSZ");
    }
    civil_seconds(digits(&y[..4])?, &y[4..])
}

/// Seconds since the epoch of `year` and `MMDDHHMMSS`.
fn civil_seconds(year: i64, rest: &[u8]) -> Result<i64, &'static str> {
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("time: month or day out of range");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time: hour, minute or second out of range");
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, &'static str> {
    text.iter().try_fold(0i64, |n, &b| match b {
        b'0'..=b'9' => Ok(n * 10 + i64::from(b - b'0')),
        _ => Err("time: not a digit"),
    })
}

/// Days from 1970-01-01 to `year-month-day` in the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`: years counted from March, so the leap day ends a year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A DER element with `contents` (short or long length form as needed).
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len @ 0x80..=0xff => out.extend([0x81, len as u8]),
            len => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    /// A certificate's outline: every field up to the validity, with filler where a real
    /// one has a name or algorithm.
    fn certificate(version: bool, not_after: Vec<u8>, issuer_len: usize) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend(tlv(VERSION, &tlv(INTEGER, &[2])));
        }
        tbs.extend(tlv(INTEGER, &[0x4f, 0x11, 0x22]));
        tbs.extend(tlv(SEQUENCE, &tlv(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(SEQUENCE, &vec![0x31; issuer_len]));
        let mut validity = tlv(UTC_TIME, b"260101000000Z");
        validity.extend(not_after);
        tbs.extend(tlv(SEQUENCE, &validity));
        tbs.extend(tlv(SEQUENCE, &[0x05, 0x00])); // subject, and more
        let mut cert = tlv(SEQUENCE, &tbs);
        cert.extend(tlv(SEQUENCE, &[0x05, 0x00])); // signatureAlgorithm
        cert.extend(tlv(0x03, &[0x00, 0xff])); // signature
        tlv(SEQUENCE, &cert)
    }

    #[test]
    fn reads_not_after_in_either_time_form() {
        // `date -u -d 2026-12-08T12:34:56Z +%s`
        let utc = certificate(true, tlv(UTC_TIME, b"261208123456Z"), 10);
        assert_eq!(not_after(&utc), Ok(1_796_733_296));
        let generalized = certificate(false, tlv(GENERALIZED_TIME, b"20261208123456Z"), 300);
        assert_eq!(not_after(&generalized), Ok(1_796_733_296));
        // After 2049 certificates must use GeneralizedTime.
        let far = certificate(true, tlv(GENERALIZED_TIME, b"99991231235959Z"), 0);
        assert_eq!(not_after(&far), Ok(253_402_300_799));
    }

    #[test]
    fn utc_time_years_pivot_at_1950() {
        assert_eq!(utc_time(b"500101000000Z"), Ok(-631_152_000));
        assert_eq!(utc_time(b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(utc_time(b"700101000000Z"), Ok(0));
    }

    #[test]
    fn leap_days_count() {
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
        assert_eq!(days_from_civil(2024, 12, 31), 20_088);
    }

    #[test]
    fn malformed_certificates_are_errors() {
        let good = certificate(true, tlv(UTC_TIME, b"261208123456Z"), 10);
        for cut in 0..good.len() {
            assert!(not_after(&good[..cut]).is_err(), "cut at {cut}");
        }
        for bad in [
            certificate(true, tlv(UTC_TIME, b"261308123456Z"), 1),
            certificate(true, tlv(UTC_TIME, b"2612081234Z"), 1),
            certificate(true, tlv(UTC_TIME, b"26120812345aZ"), 1),
            certificate(true, tlv(UTC_TIME, b"261208123456+0100"), 1),
            certificate(true, tlv(GENERALIZED_TIME, b"20261208123456.5Z"), 1),
            certificate(true, tlv(INTEGER, b"261208123456Z"), 1),
        ] {
            assert!(not_after(&bad).is_err(), "{bad:02x?}");
        }
        assert_eq!(
            not_after(&[0x30, 0x80, 0x00, 0x00]),
            Err("unsupported DER length")
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = not_after(&bytes);
        }

        #[test]
        fn never_panics_on_a_damaged_certificate(flip in 0usize..120, to in any::<u8>()) {
            let mut cert = certificate(true, tlv(UTC_TIME, b"261208123456Z"), 20);
            let at = flip % cert.len();
            cert[at] = to;
            let _ = not_after(&cert);
        }
    }
}
