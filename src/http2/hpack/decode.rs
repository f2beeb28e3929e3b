//! Decoding a request's header block (RFC 7541 §6): the four field representations and
//! dynamic table size updates, into a callback per field.

use std::ops::Range;

use super::error::HpackError;
use super::huffman;
use super::table::{STATIC, Table};
use super::wire::Reader;

/// Where a decoded string lives until the field is handed out.
enum Str {
    /// Bytes of the block itself (a literal not Huffman coded).
    Block(Range<usize>),
    /// Bytes of the decoder's scratch buffer (Huffman output, or a copied name).
    Scratch(Range<usize>),
    Static(&'static [u8]),
}

/// Scratch capacity kept between blocks; it holds one field at a time, so only an over-long
/// one grows it past this.
const SCRATCH_KEEP: usize = 16 * 1024;

/// One connection's HPACK decoder: its dynamic table and a scratch buffer, both reused
/// across blocks.
pub struct Decoder {
    pub(super) table: Table,
    /// SETTINGS_HEADER_TABLE_SIZE as ferry announced it: no size update may exceed it.
    pub(super) max_table_size: usize,
    scratch: Vec<u8>,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE ferry advertises (4096).
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: Table::new(max_table_size),
            max_table_size,
            scratch: Vec::new(),
        }
    }

    /// Decodes one complete header block (HEADERS + CONTINUATION payloads joined), calling
    /// `field(name, value)` for each field in order. Past `max_list_size` (RFC 9113 §6.5.2:
    /// name + value + 32 per field) it keeps decoding (the dynamic table must stay in step)
    /// without calling `field`, and returns `Err(HpackError::ListTooLarge)` at the end.
    pub fn decode<F: FnMut(&[u8], &[u8])>(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut field: F,
    ) -> Result<(), HpackError> {
        let mut r = Reader::new(block);
        let mut list = ListSize {
            size: 0,
            max: max_list_size,
        };
        let mut fields_seen = false;
        while let Some(first) = r.peek() {
            if first & 0xe0 == 0x20 {
                // 001xxxxx: dynamic table size update (§6.3), only before the first field.
                if fields_seen {
                    return Err(HpackError::TableSizeUpdateMidBlock);
                }
                let size = r.int(5)?;
                if size > self.max_table_size {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.table.set_max_size(size);
                continue;
            }
            fields_seen = true;
            if first & 0x80 != 0 {
                // 1xxxxxxx: indexed field (§6.1).
                let index = r.int(7)?;
                let (name, value) = entry(&self.table, index)?;
                if list.admit(name, value) {
                    field(name, value);
                }
            } else {
                // 01xxxxxx: with incremental indexing (§6.2.1); 0000xxxx without indexing,
                // 0001xxxx never indexed (§6.2.2, §6.2.3): the same to a decoder.
                let indexing = first & 0x40 != 0;
                self.literal(&mut r, indexing, &mut list, &mut field)?;
            }
        }
        if self.scratch.capacity() > SCRATCH_KEEP {
            // An over-long literal (a head answered 431) leaves no large buffer behind.
            self.scratch = Vec::new();
        }
        if list.size > list.max {
            return Err(HpackError::ListTooLarge);
        }
        Ok(())
    }

    fn literal<F: FnMut(&[u8], &[u8])>(
        &mut self,
        r: &mut Reader<'_>,
        indexing: bool,
        list: &mut ListSize,
        field: &mut F,
    ) -> Result<(), HpackError> {
        self.scratch.clear();
        let index = r.int(if indexing { 6 } else { 4 })?;
        let name = match index {
            0 => read_string(r, &mut self.scratch)?,
            1..=61 => Str::Static(STATIC[index - 1].0),
            _ => {
                // Copied: inserting may evict this very entry (§4.4), and the table cannot
                // lend it while it is changed.
                let (name, _) = entry(&self.table, index)?;
                let len = name.len();
                self.scratch.extend_from_slice(name);
                Str::Scratch(0..len)
            }
        };
        let value = read_string(r, &mut self.scratch)?;
        let name = resolve(name, r.block(), &self.scratch);
        let value = resolve(value, r.block(), &self.scratch);
        if indexing {
            self.table.insert(name, value, 0);
        }
        if list.admit(name, value) {
            field(name, value);
        }
        Ok(())
    }
}

/// The entry at `index` of the combined index space (§2.3.3).
fn entry(table: &Table, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    match index {
        0 => Err(HpackError::BadIndex(0)),
        1..=61 => Ok(STATIC[index - 1]),
        _ => table.get(index - 62).ok_or(HpackError::BadIndex(index)),
    }
}

/// Reads a string literal (§5.2): Huffman-coded ones are decoded into `scratch`.
fn read_string(r: &mut Reader<'_>, scratch: &mut Vec<u8>) -> Result<Str, HpackError> {
    let huffman = r.peek().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = r.int(7)?;
    let bytes = r.take(len)?;
    if !huffman {
        return Ok(Str::Block(bytes));
    }
    let start = scratch.len();
    huffman::decode(&r.block()[bytes], scratch)?;
    Ok(Str::Scratch(start..scratch.len()))
}

fn resolve<'a>(s: Str, block: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
    match s {
        Str::Block(range) => &block[range],
        Str::Scratch(range) => &scratch[range],
        Str::Static(bytes) => bytes,
    }
}

/// The running RFC 9113 §6.5.2 size of a header list against its limit.
struct ListSize {
    size: usize,
    max: usize,
}

impl ListSize {
    /// Counts a field; whether it is still within the limit (then it is handed out).
    fn admit(&mut self, name: &[u8], value: &[u8]) -> bool {
        self.size = self.size.saturating_add(name.len() + value.len() + 32);
        self.size <= self.max
    }
}
