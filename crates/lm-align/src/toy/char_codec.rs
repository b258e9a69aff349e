//! A fixed character-level tokenizer for the toy task: every character the problems use is
//! one token, and the r1_zero tags are single tokens so a tiny model emits them in one step
//! (and a reward hinges on one choice rather than on spelling eight characters right).

use lm_core::{LmError, Result};

use crate::policy::TextCodec;

/// Ids 0 and 1: never produced by `encode`, dropped by `decode`.
const PAD_ID: u32 = 0;
const EOS_ID: u32 = 1;
/// The r1_zero tags, ids 2..=5, matched greedily as whole tokens on encode.
const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];
const FIRST_TAG_ID: u32 = 2;
const NEWLINE_ID: u32 = FIRST_TAG_ID + TAGS.len() as u32;
/// Printable ASCII `' '..='~'` follows the newline.
const FIRST_PRINTABLE_ID: u32 = NEWLINE_ID + 1;
const PRINTABLE: std::ops::RangeInclusive<u8> = 32..=126;
const VOCAB_SIZE: usize = FIRST_PRINTABLE_ID as usize + 95;

/// `<pad>`, `<eos>`, the four tags, `'\n'` and printable ASCII: 102 ids in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct CharCodec;

impl CharCodec {
    pub fn new() -> Self {
        Self
    }

    /// The id that ends a document and a rollout.
    pub fn eos_id() -> u32 {
        EOS_ID
    }

    /// The id of one of the r1_zero tags (`"<think>"`, `"</answer>"`, …), if `tag` is one.
    pub fn tag_id(tag: &str) -> Option<u32> {
        TAGS.iter()
            .position(|t| *t == tag)
            .map(|i| FIRST_TAG_ID + i as u32)
    }

    fn char_id(c: char) -> Option<u32> {
        match c {
            '\n' => Some(NEWLINE_ID),
            c if c.is_ascii() && PRINTABLE.contains(&(c as u8)) => {
                Some(FIRST_PRINTABLE_ID + u32::from(c as u8 - PRINTABLE.start()))
            }
            _ => None,
        }
    }
}

impl TextCodec for CharCodec {
    /// Tags become one token each, every other character one token; the text `<eos>` is
    /// just five characters (specials are never encoded from text).
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let offset = text.len() - rest.len();
            if let Some(i) = TAGS.iter().position(|t| rest.starts_with(t)) {
                ids.push(FIRST_TAG_ID + i as u32);
                rest = &rest[TAGS[i].len()..];
                continue;
            }
            let id = Self::char_id(c).ok_or_else(|| {
                LmError::config(
                    "text",
                    format!(
                        "character {c:?} (U+{:04X}) at byte offset {offset} is not in the \
                         character vocabulary ('\\n' and printable ASCII only)",
                        u32::from(c)
                    ),
                )
            })?;
            ids.push(id);
            rest = &rest[c.len_utf8()..];
        }
        Ok(ids)
    }

    /// Pad and eos are dropped; an id outside the vocabulary shows as U+FFFD.
    fn decode(&self, ids: &[u32]) -> String {
        let mut text = String::with_capacity(ids.len());
        for &id in ids {
            match id {
                PAD_ID | EOS_ID => {}
                id if id < NEWLINE_ID => text.push_str(TAGS[(id - FIRST_TAG_ID) as usize]),
                NEWLINE_ID => text.push('\n'),
                id if (id as usize) < VOCAB_SIZE => {
                    text.push(char::from(
                        PRINTABLE.start() + (id - FIRST_PRINTABLE_ID) as u8,
                    ));
                }
                _ => text.push(char::REPLACEMENT_CHARACTER),
            }
        }
        text
    }

    fn stop_token_ids(&self) -> Vec<u32> {
        vec![EOS_ID]
    }

    fn pad_id(&self) -> u32 {
        PAD_ID
    }

    fn vocab_size(&self) -> usize {
        VOCAB_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_decodes_to_a_distinct_token_that_encodes_back() {
        let codec = CharCodec;
        for id in FIRST_TAG_ID..VOCAB_SIZE as u32 {
            let text = codec.decode(&[id]);
            assert_eq!(codec.encode(&text).unwrap(), vec![id], "id {id} ({text:?})");
        }
        assert_eq!(codec.decode(&[PAD_ID, EOS_ID]), "");
        assert_eq!(
            codec.decode(&[VOCAB_SIZE as u32, u32::MAX]),
            "\u{FFFD}\u{FFFD}"
        );
    }
}
