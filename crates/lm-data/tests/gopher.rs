//! Ports of the course's Gopher tests (tests/test_quality.py, generated strings with the same
//! assertions), plus checks of the measured statistics.

use lm_data::gopher::{GopherRule, gopher_quality_filter, gopher_report};

#[test]
fn test_gopher_valid_input() {
    let text = "This should definitely be a valid input text and of high quality according \
                to Gopher rules.\n"
        .repeat(100);
    assert!(gopher_quality_filter(&text));
}

#[test]
fn test_gopher_less_than_50_non_symbol_words() {
    let text = "The string you are reading is a short snippet of text.";
    assert_eq!(text.split_whitespace().count(), 11);
    assert!(!gopher_quality_filter(text));
    assert!(gopher_quality_filter(&format!("{text}\n").repeat(100)));
}

#[test]
fn test_gopher_more_than_100000_non_symbol_words() {
    let too_long = "This is a sentence that will be repeated many many times. ".repeat(50_000);
    assert_eq!(too_long.split_whitespace().count(), 11 * 50_000);
    assert!(!gopher_quality_filter(&too_long));
    let fine = "This is another sentence which will be repeated several more times. ".repeat(5_000);
    assert_eq!(fine.split_whitespace().count(), 11 * 5_000);
    assert!(gopher_quality_filter(&fine));
}

#[test]
fn test_gopher_average_word_length_less_than_3() {
    assert!(!gopher_quality_filter(&"the be ".repeat(100)));
    assert!(gopher_quality_filter(&"the with ".repeat(100)));
}

#[test]
fn test_gopher_average_word_length_greater_than_10() {
    let long = "longgggggggggggg averageeeeeeeee lengthhhhhhhhhh ".repeat(100);
    assert!(!gopher_quality_filter(&long));
    let short = "short words are fine here ".repeat(100);
    assert!(gopher_quality_filter(&short));
}

#[test]
fn test_gopher_more_than_30_percent_lines_ending_with_ellipsis() {
    let failing = "The line here ends with...\n".repeat(70)
        + &"This line does not end with an ellipsis.\n".repeat(30);
    assert!(!gopher_quality_filter(&failing));
    let passing = "The line here ends with...\n".repeat(30)
        + &"This line does not end with an ellipsis.\n".repeat(230);
    assert!(gopher_quality_filter(&passing));
}

#[test]
fn test_gopher_less_than_80_percent_words_with_alphabetic_character() {
    let text = "123 123 123 123 123 123 123 123 some words are alphabetic";
    assert_eq!(text.split_whitespace().count(), 12);
    assert!(!gopher_quality_filter(text));
}

// Our own checks of the report.

#[test]
fn report_measures_and_names_each_failed_rule() {
    let r = gopher_report("");
    assert_eq!(r.words, 0);
    assert_eq!(
        r.failed,
        [
            GopherRule::WordCount,
            GopherRule::MeanWordLength,
            GopherRule::AlphabeticWords
        ]
    );
    assert!(!r.keep());

    // 60 words of 4 letters, 40 words "1234": 100 words, mean 4, 60% alphabetic.
    let text = "word ".repeat(60) + &"1234 ".repeat(40);
    let r = gopher_report(&text);
    assert_eq!(r.words, 100);
    assert!((r.mean_word_length - 4.0).abs() < 1e-12);
    assert!((r.alphabetic_word_fraction - 0.6).abs() < 1e-12);
    assert_eq!(r.failed, [GopherRule::AlphabeticWords]);
    assert_eq!(GopherRule::AlphabeticWords.name(), "alphabetic_words");

    // The thresholds are inclusive: exactly 30% ellipsis lines and exactly 80% alphabetic pass.
    let numbers: Vec<String> = (1..=18).map(|i| i.to_string()).collect();
    let text = "ends here with...\n".repeat(3)
        + &"plain line of ordinary words\n".repeat(6)
        + &"more ordinary words ".repeat(11)
        + &numbers.join(" ");
    let r = gopher_report(&text);
    assert_eq!(r.lines, 10);
    assert!((r.ellipsis_line_fraction - 0.3).abs() < 1e-12, "{r:?}");
    assert_eq!(r.words, 9 + 30 + 33 + 18);
    assert!((r.alphabetic_word_fraction - 0.8).abs() < 1e-12, "{r:?}");
    assert!(r.keep(), "{r:?}");
}

#[test]
fn unicode_ellipsis_counts_and_blank_lines_do_not() {
    let text = "a line ending in an ellipsis…\n\n\n".repeat(40)
        + &"an ordinary line with words\n\n".repeat(60);
    let r = gopher_report(&text);
    assert_eq!(r.lines, 100);
    assert!((r.ellipsis_line_fraction - 0.4).abs() < 1e-12);
    assert_eq!(r.failed, [GopherRule::EllipsisLines]);
}

#[test]
fn word_length_counts_characters_not_bytes() {
    // "ééé" is 3 characters (6 bytes): mean 3 passes; "éé" (mean 2) fails.
    assert!(gopher_quality_filter(&"ééé ".repeat(60)));
    assert!(!gopher_quality_filter(&"éé ".repeat(60)));
}
