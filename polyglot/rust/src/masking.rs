//! Masking for responses (the contract's rule) and redaction for logs.
//!
//! Responses: a key is secret when its lowercased name contains any of the contract's
//! substrings; its value becomes exactly `********`. Logs: every line is written through
//! [`RedactingWriter`], which replaces every secret value this process has read (registered by
//! the Vault client and the secret store) and anything shaped like a Vault token.

use std::io::{self, Write};
use std::sync::{Arc, RwLock};

pub const MASK: &str = "********";

const MASKED_KEY_SUBSTRINGS: [&str; 14] = [
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "private",
    "auth",
    "cookie",
    "dsn",
    "signature",
    "role_id",
];

pub fn is_masked_key(key: &str) -> bool {
    let lowered = key.to_lowercase();
    MASKED_KEY_SUBSTRINGS
        .iter()
        .any(|part| lowered.contains(part))
}

/// Shorter values ("1", "yes") would mask innocent text everywhere.
const MIN_KNOWN_SECRET: usize = 6;

/// The secret values seen so far, shared by the Vault client, the secret store and the log
/// writer.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn add(&self, value: &str) {
        if value.len() < MIN_KNOWN_SECRET {
            return;
        }
        if let Ok(mut known) = self.known.write() {
            if !known.iter().any(|k| k == value) {
                known.push(value.to_owned());
                // Longest first, so a secret containing another is masked whole.
                known.sort_by_key(|k| std::cmp::Reverse(k.len()));
            }
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_tokens(text);
        if let Ok(known) = self.known.read() {
            for value in known.iter() {
                if out.contains(value.as_str()) {
                    out = out.replace(value.as_str(), MASK);
                }
            }
        }
        out
    }
}

/// Vault/OpenBao tokens (`hvs.`, `hvb.`, `hvr.`, `s.`, `b.`, `r.` followed by 20+ token
/// characters) become `[REDACTED TOKEN]`.
fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    while i < bytes.len() {
        let at_boundary = i == 0 || !token_char(bytes[i - 1]);
        if at_boundary {
            let prefix_len = if bytes[i..].starts_with(b"hvs.")
                || bytes[i..].starts_with(b"hvb.")
                || bytes[i..].starts_with(b"hvr.")
            {
                4
            } else if bytes.len() > i + 1
                && matches!(bytes[i], b's' | b'b' | b'r')
                && bytes[i + 1] == b'.'
            {
                2
            } else {
                0
            };
            if prefix_len > 0 {
                let mut end = i + prefix_len;
                while end < bytes.len() && token_char(bytes[end]) {
                    end += 1;
                }
                if end - (i + prefix_len) >= 20 {
                    out.push_str(&text[copied..i]);
                    out.push_str("[REDACTED TOKEN]");
                    copied = end;
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// A `MakeWriter` for tracing-subscriber: each formatted line is redacted, then written to
/// stdout whole.
#[derive(Clone)]
pub struct RedactingWriter {
    redactor: Redactor,
}

impl RedactingWriter {
    pub fn new(redactor: Redactor) -> Self {
        RedactingWriter { redactor }
    }
}

pub struct LineWriter {
    redactor: Redactor,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let clean = self.redactor.redact(&text);
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(clean.as_bytes());
        let _ = stdout.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            redactor: self.redactor.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_keys_follow_the_contract() {
        for key in [
            "password",
            "dbPassword",
            "apitoken",
            "API_KEY",
            "role_id",
            "Authorization",
            "token_ttl",
            "monkey",
        ] {
            assert!(is_masked_key(key), "{key} should be masked");
        }
        for key in ["user", "database", "host", "port", "vhost", "tls_enabled"] {
            assert!(!is_masked_key(key), "{key} should not be masked");
        }
    }

    #[test]
    fn known_values_and_tokens_are_redacted() {
        let r = Redactor::default();
        r.add("s3cr3t-value");
        r.add("abc"); // too short to be remembered
        let line = "login with s3cr3t-value gave hvs.CAESIJlongtokenvalue1234567890 and abc";
        let clean = r.redact(line);
        assert!(!clean.contains("s3cr3t-value"));
        assert!(!clean.contains("hvs.CAESIJ"));
        assert!(clean.contains("[REDACTED TOKEN]"));
        assert!(clean.contains("abc"));
        assert_eq!(r.redact("plain text s.short"), "plain text s.short");
    }
}
