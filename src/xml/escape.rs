//! Character escaping exactly as Canonical XML 1.0 §2.3 prescribes.
//!
//! Everything segl writes goes through these two functions, so what it emits is already in
//! canonical form and the canonicalizer and the writer can never disagree about escaping.

/// Appends `s` escaped as canonical text content (`&`, `<`, `>`, CR).
pub fn text(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Appends `s` escaped as a canonical attribute value (`&`, `<`, `"`, TAB, LF, CR).
pub fn attribute(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'"' => b"&quot;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_only_what_c14n_requires() {
        let mut out = Vec::new();
        text(&mut out, b"a&b<c>d\re\"f'\tg\n");
        assert_eq!(out, b"a&amp;b&lt;c&gt;d&#xD;e\"f'\tg\n");
    }

    #[test]
    fn attribute_escapes_whitespace_and_quotes() {
        let mut out = Vec::new();
        attribute(&mut out, b"a&b<c>d\"e\tf\ng\rh'");
        assert_eq!(out, b"a&amp;b&lt;c>d&quot;e&#x9;f&#xA;g&#xD;h'");
    }
}
