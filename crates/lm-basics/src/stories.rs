//! A procedural children's-story corpus, deterministic from a seed: the embedded default data
//! of `cargo xtask lab1`, so the lab runs with no downloads. Stories are separated by
//! `<|endoftext|>`, like TinyStories.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NAMES: &[&str] = &[
    "Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Leo", "Zoe", "Sam", "Lucy", "Jack",
    "Emma", "Finn", "Ruby", "Oscar",
];
const ANIMALS: &[&str] = &[
    "cat", "dog", "bunny", "bird", "frog", "duck", "bear", "fox", "mouse", "puppy", "owl", "turtle",
];
const PLACES: &[&str] = &[
    "park", "garden", "forest", "beach", "farm", "river", "hill", "school", "kitchen", "lake",
];
const OBJECTS: &[&str] = &[
    "ball",
    "kite",
    "red hat",
    "big box",
    "shiny stone",
    "toy car",
    "blue cup",
    "book",
    "drum",
    "boat",
];
const ADJECTIVES: &[&str] = &[
    "happy", "little", "brave", "kind", "sleepy", "funny", "curious", "gentle", "tiny", "silly",
];
const FEELINGS: &[&str] = &["sad", "scared", "worried", "lonely", "upset"];
const WEATHER: &[&str] = &["sunny", "rainy", "windy", "warm", "cold", "snowy"];
const ACTIONS: &[&str] = &[
    "play", "run", "jump", "sing", "dance", "read", "swim", "draw",
];
const FOODS: &[&str] = &[
    "apples", "cookies", "soup", "bread", "cake", "carrots", "honey", "pie",
];

fn pick<'a>(rng: &mut impl Rng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).expect("non-empty list")
}

/// One story of six to nine sentences.
pub fn story(rng: &mut impl Rng) -> String {
    let (name, friend) = (pick(rng, NAMES), pick(rng, NAMES));
    let (animal, adj, place) = (pick(rng, ANIMALS), pick(rng, ADJECTIVES), pick(rng, PLACES));
    let (object, feeling, action) = (pick(rng, OBJECTS), pick(rng, FEELINGS), pick(rng, ACTIONS));
    let mut s = vec![
        match rng.random_range(0..3) {
            0 => format!("Once upon a time, there was a {adj} {animal} named {name}."),
            1 => format!(
                "One {} day, a {adj} {animal} called {name} went to the {place}.",
                pick(rng, WEATHER)
            ),
            _ => format!("{name} was a {adj} {animal} who lived near the {place}."),
        },
        format!("{name} liked to {action} with {friend} every day."),
        format!("One day, {name} found a {object} in the {place}."),
    ];
    match rng.random_range(0..3) {
        0 => {
            s.push(format!(
                "But then the {object} was lost, and {name} felt {feeling}."
            ));
            s.push(format!(
                "{friend} said, \"Do not be {feeling}. We can look for it together.\""
            ));
            s.push(format!(
                "They looked under the trees and near the {}.",
                pick(rng, PLACES)
            ));
            s.push(format!(
                "At last, {friend} found the {object} and gave it back to {name}."
            ));
        }
        1 => {
            s.push(format!(
                "{friend} wanted to {action} with the {object} too."
            ));
            s.push(format!(
                "At first {name} did not want to share, and {friend} was {feeling}."
            ));
            s.push(format!("Then {name} said, \"Let us {action} together!\""));
        }
        _ => {
            let food = pick(rng, FOODS);
            s.push(format!(
                "{name} was hungry, so {name} and {friend} ate some {food}."
            ));
            s.push(format!(
                "The {food} were yummy, and they shared them with a {} {}.",
                pick(rng, ADJECTIVES),
                pick(rng, ANIMALS)
            ));
        }
    }
    s.push(match rng.random_range(0..3) {
        0 => format!("{name} and {friend} were very happy. They learned that sharing is good."),
        1 => format!("From that day on, {name} and {friend} were best friends."),
        _ => format!("When the sun went down, {name} went home and slept well."),
    });
    s.join(" ")
}

/// About `bytes` bytes of stories, each followed by `<|endoftext|>` and a newline.
pub fn corpus(seed: u64, bytes: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = String::with_capacity(bytes + 1024);
    while out.len() < bytes {
        out.push_str(&story(&mut rng));
        out.push_str("<|endoftext|>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_sized() {
        let a = super::corpus(1, 50_000);
        assert_eq!(a, super::corpus(1, 50_000));
        assert_ne!(a, super::corpus(2, 50_000));
        assert!(a.len() >= 50_000 && a.len() < 52_000);
        assert!(a.matches("<|endoftext|>").count() > 50);
    }
}
