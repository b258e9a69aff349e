//! Arithmetic tables for the pretraining corpus: every `a + b`, `a − b` (non-negative) with
//! operands up to the task's `max_operand` and every `a × b` with factors 2–12, written as
//! the worked solutions write them (`7 + 8 = 15.`) and packed into documents. A tiny model
//! sees each fact many times in a few hundred steps; the noisy word-problem solutions alone
//! give too few examples of each sum to learn arithmetic from.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Every fact of the tables once.
fn facts(max_operand: u32) -> Vec<String> {
    let mut out = Vec::new();
    for a in 0..=max_operand {
        for b in 0..=max_operand {
            out.push(format!("{a} + {b} = {}.", a + b));
            if a >= b {
                out.push(format!("{a} - {b} = {}.", a - b));
            }
        }
    }
    for a in 2..=12 {
        for b in 2..=12 {
            out.push(format!("{a} * {b} = {}.", a * b));
        }
    }
    out
}

/// `count` documents of shuffled facts (reshuffled for every pass over the tables), each at
/// most `max_chars` characters.
pub fn fact_documents(max_operand: u32, count: usize, max_chars: usize, seed: u64) -> Vec<String> {
    let table = facts(max_operand);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = Vec::new();
    let mut docs = Vec::with_capacity(count);
    while docs.len() < count {
        let mut doc = String::from("Facts:");
        loop {
            if order.is_empty() {
                order.extend(0..table.len());
                order.shuffle(&mut rng);
            }
            let next = &table[*order.last().expect("refilled above")];
            if doc.len() + 1 + next.len() > max_chars {
                break;
            }
            doc.push(' ');
            doc.push_str(next);
            order.pop();
        }
        docs.push(doc);
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_complete_right_and_packed_within_bounds() {
        let table = facts(3);
        // 16 sums, 10 non-negative differences, 121 products.
        assert_eq!(table.len(), 16 + 10 + 121);
        assert!(
            table.contains(&"3 - 1 = 2.".to_string())
                && table.contains(&"12 * 11 = 132.".to_string())
        );
        let docs = fact_documents(3, 40, 60, 1);
        assert_eq!(docs.len(), 40);
        assert!(
            docs.iter()
                .all(|d| d.len() <= 60 && d.starts_with("Facts: "))
        );
        // Each pass covers the whole table before repeating a fact.
        let seen: std::collections::HashSet<&str> = docs
            .iter()
            .flat_map(|d| d[7..].split_inclusive(". "))
            .map(|f| f.trim())
            .collect();
        assert_eq!(seen.len(), table.len());
    }
}
