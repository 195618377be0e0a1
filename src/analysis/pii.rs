//! PII redaction for stored and pushed text: payment card numbers (13–19
//! digits passing the Luhn check), phone numbers (7–15 digits), e-mail
//! addresses and national ids (configurable patterns; defaults: US SSN, UK
//! National Insurance number). Digits may be spaced or dashed the way a
//! recogniser writes spoken numbers ("4 1 1 1 - 1 1 1 1 ..."). Each finding
//! is replaced by `[CARD]`, `[PHONE]`, `[EMAIL]` or `[ID]`.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Card,
    Phone,
    Email,
    NationalId,
}

impl PiiKind {
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Card => "[CARD]",
            PiiKind::Phone => "[PHONE]",
            PiiKind::Email => "[EMAIL]",
            PiiKind::NationalId => "[ID]",
        }
    }
}

/// A finding: byte range in the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiSpan {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// Default national-id patterns: US SSN, UK National Insurance number.
pub const DEFAULT_ID_PATTERNS: &[&str] = &[
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"(?i)\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
];

/// Finds and masks PII.
#[derive(Debug, Clone)]
pub struct Redactor {
    email: Regex,
    digits: Regex,
    ids: Vec<Regex>,
}

/// Luhn checksum over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

impl Redactor {
    /// With these national-id patterns (regex syntax).
    pub fn new(id_patterns: &[&str]) -> Result<Redactor, regex::Error> {
        Ok(Redactor {
            email: Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")?,
            digits: Regex::new(r"\+?\d(?:[ \-.()]{0,2}\d){5,22}")?,
            ids: id_patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Every finding, by position, without overlaps (the earlier, then the
    /// longer wins).
    pub fn find(&self, text: &str) -> Vec<PiiSpan> {
        let mut all: Vec<PiiSpan> = vec![];
        for m in self.email.find_iter(text) {
            all.push(PiiSpan {
                kind: PiiKind::Email,
                start: m.start(),
                end: m.end(),
            });
        }
        for r in &self.ids {
            for m in r.find_iter(text) {
                all.push(PiiSpan {
                    kind: PiiKind::NationalId,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        for m in self.digits.find_iter(text) {
            let d: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
            let kind = if (13..=19).contains(&d.len()) && luhn(&d) {
                PiiKind::Card
            } else if (7..=15).contains(&d.len()) {
                PiiKind::Phone
            } else {
                continue;
            };
            all.push(PiiSpan {
                kind,
                start: m.start(),
                end: m.end(),
            });
        }
        all.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out: Vec<PiiSpan> = vec![];
        for s in all {
            if out.last().is_some_and(|l| s.start < l.end) {
                continue;
            }
            out.push(s);
        }
        out
    }

    /// `text` with every finding replaced by its placeholder.
    pub fn redact(&self, text: &str) -> (String, Vec<PiiSpan>) {
        let spans = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in &spans {
            out.push_str(&text[at..s.start]);
            out.push_str(s.kind.placeholder());
            at = s.end;
        }
        out.push_str(&text[at..]);
        (out, spans)
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_ID_PATTERNS).expect("the default patterns compile")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_phones_emails_ids_are_masked() {
        let r = Redactor::default();
        let (t, s) =
            r.redact("My card is 4111 1111 1111 1111 and my email is jo.doe+x@example.co.uk.");
        assert_eq!(t, "My card is [CARD] and my email is [EMAIL].");
        assert_eq!(s.len(), 2);
        // Spoken digits, the way the recogniser writes them.
        let (t, _) = r.redact("call me on 0 7 7 0 0 9 0 0 1 2 3 tomorrow");
        assert_eq!(t, "call me on [PHONE] tomorrow");
        let (t, _) = r.redact("+44 (20) 7946-0958 or 555-0100-22");
        assert_eq!(t, "[PHONE] or [PHONE]");
        // A 16-digit number failing Luhn is not a card (too long for a phone).
        let (t, _) = r.redact("reference 4111 1111 1111 1112 ok");
        assert_eq!(t, "reference 4111 1111 1111 1112 ok");
        let (t, _) = r.redact("SSN 078-05-1120, NI number AB 12 34 56 C.");
        assert_eq!(t, "SSN [ID], NI number [ID].");
        // Short numbers, amounts, times stay.
        let (t, s) = r.redact("I am 34, it cost 1,250 dollars at 10:30 on 12/05.");
        assert!(s.is_empty(), "{t}");
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(Redactor::new(&["(unclosed"]).is_err());
    }
}
