//! Ports of the course's tests/test_pii.py (same strings, same assertions), plus edge cases.

use lm_data::pii::{mask_emails, mask_ips, mask_phone_numbers};

#[test]
fn test_mask_emails_single() {
    let text = "Feel free to contact me at test@gmail.com if you have any questions.";
    let (masked, n) = mask_emails(text);
    assert_eq!(
        masked,
        "Feel free to contact me at |||EMAIL_ADDRESS||| if you have any questions."
    );
    assert_eq!(n, 1);
}

#[test]
fn test_mask_emails_multiple() {
    let text = "The instructors are pl@fakedomain.ai and spl@fakedomain.ai";
    let (masked, n) = mask_emails(text);
    assert_eq!(
        masked,
        "The instructors are |||EMAIL_ADDRESS||| and |||EMAIL_ADDRESS|||"
    );
    assert_eq!(n, 2);
}

#[test]
fn test_mask_emails_existing_string() {
    let text = "Some datasets use the string |||EMAIL_ADDRESS||| to represent masked PII. \
                The instructors are pl@fakedomain.ai and spl@fakedomain.ai";
    let (masked, n) = mask_emails(text);
    assert_eq!(
        masked,
        "Some datasets use the string |||EMAIL_ADDRESS||| to represent masked PII. \
         The instructors are |||EMAIL_ADDRESS||| and |||EMAIL_ADDRESS|||"
    );
    assert_eq!(n, 2);
}

#[test]
fn test_mask_phones_single() {
    for number in [
        "2831823829",
        "(283)-182-3829",
        "(283) 182 3829",
        "283-182-3829",
    ] {
        let text = format!("Feel free to contact me at {number} if you have any questions.");
        let (masked, n) = mask_phone_numbers(&text);
        assert_eq!(
            masked, "Feel free to contact me at |||PHONE_NUMBER||| if you have any questions.",
            "{number}"
        );
        assert_eq!(n, 1, "{number}");
    }
}

#[test]
fn test_mask_ips() {
    let (masked, n) = mask_ips("You can access the server at 192.0.2.146.");
    assert_eq!(masked, "You can access the server at |||IP_ADDRESS|||.");
    assert_eq!(n, 1);
}

// Our own edge cases.

#[test]
fn emails_keep_sentence_punctuation_and_subdomains() {
    let (masked, n) = mask_emails("Write to a.b+tag@mail.cs.stanford.edu. Or (x_y@ex-ample.org)!");
    assert_eq!(
        masked,
        "Write to |||EMAIL_ADDRESS|||. Or (|||EMAIL_ADDRESS|||)!"
    );
    assert_eq!(n, 2);
}

#[test]
fn emails_no_false_positives() {
    for text in [
        "no address here",
        "@handle on social media",
        "user@localhost is not a full address",
        "price: 5@3.00",
        "|||EMAIL_ADDRESS|||",
    ] {
        let (masked, n) = mask_emails(text);
        assert_eq!((masked.as_str(), n), (text, 0), "{text}");
    }
}

#[test]
fn phones_other_us_formats() {
    for number in [
        "283.182.3829",
        "+1 283 182 3829",
        "+1-283-182-3829",
        "1-283-182-3829",
        "(283)182-3829",
        "283 182 3829",
    ] {
        let (masked, n) = mask_phone_numbers(&format!("call {number}, thanks"));
        assert_eq!(masked, "call |||PHONE_NUMBER|||, thanks", "{number}");
        assert_eq!(n, 1, "{number}");
    }
    let (masked, n) = mask_phone_numbers("2831823829 or 283-182-3830");
    assert_eq!(masked, "|||PHONE_NUMBER||| or |||PHONE_NUMBER|||");
    assert_eq!(n, 2);
}

#[test]
fn phones_no_false_positives_on_long_digit_runs_and_words() {
    for text in [
        "order 123456789012345 shipped",
        "id 28318238291",
        "ISBN 9780262035613",
        "serial A2831823829",
        "2831823829x",
        "283-182-382",
        "3.14159265358979",
        "version 1.2.3",
    ] {
        let (masked, n) = mask_phone_numbers(text);
        assert_eq!((masked.as_str(), n), (text, 0), "{text}");
    }
}

#[test]
fn ips_valid_octets_only() {
    let (masked, n) = mask_ips("from 10.0.0.1 and 255.255.255.255, not 256.1.1.1");
    assert_eq!(
        masked,
        "from |||IP_ADDRESS||| and |||IP_ADDRESS|||, not 256.1.1.1"
    );
    assert_eq!(n, 2);
    let (masked, n) = mask_ips("0.0.0.0\n127.0.0.1");
    assert_eq!(masked, "|||IP_ADDRESS|||\n|||IP_ADDRESS|||");
    assert_eq!(n, 2);
}

#[test]
fn ips_no_false_positives() {
    for text in [
        "version 1.2.3 released",
        "999.1.1.1",
        "1.2.3.4.5",
        "a1.2.3.4",
        "192.168.1.300",
        "1.2.3.04",
        "12345678901234567890",
    ] {
        let (masked, n) = mask_ips(text);
        assert_eq!((masked.as_str(), n), (text, 0), "{text}");
    }
}

#[test]
fn non_ascii_text_around_matches() {
    let (masked, n) = mask_emails("écrivez à zoë@example.fr — merci");
    // "zoë" is not an ASCII local part: only "@example.fr" follows a non-address char, so
    // nothing is masked rather than masking half an address.
    assert_eq!(
        (masked.as_str(), n),
        ("écrivez à zoë@example.fr — merci", 0)
    );
    let (masked, n) = mask_ips("serveur : 8.8.8.8 — ok");
    assert_eq!((masked.as_str(), n), ("serveur : |||IP_ADDRESS||| — ok", 1));
}
