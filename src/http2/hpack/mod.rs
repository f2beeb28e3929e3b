//! THROWAWAY STUB of the hpack helper's module (dropped when branch `hpack` lands): literal
//! fields without indexing, new names, no Huffman — enough for the core's tests.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HpackError {
    #[error("hpack: truncated")]
    Truncated,
    #[error("hpack: unsupported by the stub")]
    BadIndex,
    #[error("hpack: integer overflow")]
    IntegerOverflow,
    #[error("hpack: header list too large")]
    ListTooLarge,
}

pub struct Decoder;

fn int(b: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = (1u16 << prefix) as usize - 1;
    let first = *b.get(*pos).ok_or(HpackError::Truncated)? as usize & mask;
    *pos += 1;
    if first < mask {
        return Ok(first);
    }
    let mut v = mask;
    let mut shift = 0;
    loop {
        let x = *b.get(*pos).ok_or(HpackError::Truncated)? as usize;
        *pos += 1;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
        v += (x & 0x7f) << shift;
        shift += 7;
        if x & 0x80 == 0 {
            return Ok(v);
        }
    }
}

fn string<'a>(b: &'a [u8], pos: &mut usize) -> Result<&'a [u8], HpackError> {
    if b.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0 {
        return Err(HpackError::BadIndex);
    }
    let n = int(b, pos, 7)?;
    let s = b.get(*pos..*pos + n).ok_or(HpackError::Truncated)?;
    *pos += n;
    Ok(s)
}

fn put_int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let mask = (1usize << prefix) - 1;
    if v < mask {
        out.push(first | v as u8);
        return;
    }
    out.push(first | mask as u8);
    v -= mask;
    while v >= 128 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    put_int(out, 0, 7, name.len());
    out.extend_from_slice(name);
    put_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

impl Decoder {
    pub fn new(_max_table_size: usize) -> Decoder {
        Decoder
    }

    pub fn decode<F: FnMut(&[u8], &[u8])>(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut field: F,
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut size = 0;
        while pos < block.len() {
            let b = block[pos];
            if b & 0xe0 == 0x20 {
                int(block, &mut pos, 5)?;
                continue;
            }
            if b & 0xf0 != 0 && b & 0xf0 != 0x10 || b & 0x0f != 0 {
                return Err(HpackError::BadIndex);
            }
            pos += 1;
            let name = string(block, &mut pos)?;
            let value = string(block, &mut pos)?;
            size += name.len() + value.len() + 32;
            if size <= max_list_size {
                field(name, value);
            }
        }
        if size > max_list_size {
            return Err(HpackError::ListTooLarge);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Encoder;

impl Encoder {
    pub fn new() -> Encoder {
        Encoder
    }

    pub fn set_max_table_size(&mut self, _size: usize) {}

    pub fn encode_status(&mut self, status: u16, out: &mut Vec<u8>) {
        put_literal(out, b":status", status.to_string().as_bytes());
    }

    pub fn encode(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        put_literal(out, name, value);
    }
}
