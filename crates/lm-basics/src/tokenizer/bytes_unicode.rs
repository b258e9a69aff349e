//! GPT-2's reversible byte ↔ printable-character map, used by vocab.json and merges.txt.
//!
//! Bytes 33–126, 161–172 and 174–255 stand for themselves; the other 68 bytes map, in order, to
//! U+0100, U+0101, … (so space is `Ġ`).

use std::sync::OnceLock;

fn tables() -> &'static ([char; 256], rustc_hash::FxHashMap<char, u8>) {
    static TABLES: OnceLock<([char; 256], rustc_hash::FxHashMap<char, u8>)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let printable = |b: u32| {
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b)
        };
        let mut to_char = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..256u32 {
            to_char[b as usize] = if printable(b) {
                char::from_u32(b).expect("latin-1")
            } else {
                next += 1;
                char::from_u32(next - 1).expect("BMP")
            };
        }
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        (to_char, to_byte)
    })
}

/// Bytes → the GPT-2 printable string.
pub fn encode(bytes: &[u8]) -> String {
    let (to_char, _) = tables();
    bytes.iter().map(|&b| to_char[b as usize]).collect()
}

/// The GPT-2 printable string → bytes; `None` if a character is not in the table.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let (_, to_byte) = tables();
    s.chars().map(|c| to_byte.get(&c).copied()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_points_and_round_trip() {
        assert_eq!(super::encode(b" "), "\u{120}");
        assert_eq!(super::encode(&[0]), "\u{100}");
        assert_eq!(super::encode(b"a!"), "a!");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)).unwrap(), all);
        assert!(super::decode("\u{4e00}").is_none());
    }
}
