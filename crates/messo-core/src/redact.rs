//! Personal data hidden for logs: addresses, phone numbers and digit runs in free text.

/// An e-mail address or phone number with most of it hidden, for logs.
pub fn mask(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    } else {
        let n = address.chars().count();
        let tail: String = address.chars().skip(n.saturating_sub(3)).collect();
        format!("{}***{tail}", address.chars().take(3).collect::<String>())
    }
}

/// Free text (a server's error message) with every e-mail address and every run of 6 or more
/// digits (a phone number, a fiscal code's digits) masked, for logs.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_matches(|c: char| "<>()[],;:\"'".contains(c));
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if (trimmed.contains('@') && trimmed.len() > 2) || digits >= 6 {
            out.push_str(&word.replace(trimmed, &mask(trimmed)));
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_personal_data() {
        assert_eq!(mask("mario.rossi@example.it"), "m***@example.it");
        assert_eq!(mask("+393471234567"), "+39***567");
        assert_eq!(
            mask_text("RCPT TO: 550 5.1.1 <mario.rossi@example.it>: Recipient rejected"),
            "RCPT TO: 550 5.1.1 <m***@example.it>: Recipient rejected"
        );
        assert_eq!(
            mask_text("refused (400): invalid number +393471234567, code 21211"),
            "refused (400): invalid number +39***567, code 21211"
        );
    }
}
