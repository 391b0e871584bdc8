//! Keyed (HMAC-SHA256) replacement values: UIDs, pseudonyms and date offsets.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The project secret. All replacements are keyed on it, so the same input
/// gives the same output across runs of one project and unrelated output across projects.
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct Keys {
    secret_len: usize,
    /// HMAC state with the key already absorbed: each value clones it instead of hashing the
    /// key again (two of the four or five SHA-256 blocks of a short HMAC).
    keyed: HmacSha256,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys {{ secret: <{} bytes, redacted> }}",
            self.secret_len
        )
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl Keys {
    pub fn new(secret: &[u8]) -> Keys {
        Keys {
            secret_len: secret.len(),
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length"),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// "2.25." + decimal of the first 128 bits of HMAC-SHA256(secret, "uid\0" + uid). Deterministic.
    /// Trailing padding (space / NUL) of the original is ignored.
    pub fn uid(&self, original: &str) -> String {
        let original = original.trim_end_matches(['\0', ' ']);
        let h = self.mac(&[b"uid\0", original.as_bytes()]);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        format!("2.25.{}", u128::from_be_bytes(b))
    }

    /// Keyed pseudonym for an identifier of a given kind: upper-case base32
    /// (A-Z, 2-7; legal in every string VR incl. CS) of
    /// HMAC-SHA256(secret, "pseudonym\0" + kind + "\0" + value), of fixed length
    /// `min(max_len, 20)` (100 bits). The caller adds any prefix and picks `max_len` to fit the VR.
    pub fn pseudonym(&self, kind: &str, value: &str, max_len: usize) -> String {
        let value = value.trim_matches(['\0', ' ']);
        let h = self.mac(&[b"pseudonym\0", kind.as_bytes(), b"\0", value.as_bytes()]);
        let n = max_len.min(20);
        let mut out = String::with_capacity(n);
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &byte in h.iter() {
            acc = (acc << 8) | byte as u32;
            bits += 8;
            while bits >= 5 && out.len() < n {
                bits -= 5;
                out.push(BASE32[((acc >> bits) & 31) as usize] as char);
            }
            if out.len() >= n {
                break;
            }
        }
        out
    }

    /// Per-patient day offset in [min_days, max_days] (inclusive), keyed on the
    /// ORIGINAL PatientID (or PatientName when there is no ID).
    pub fn date_offset_days(&self, patient_key: &str, min_days: i64, max_days: i64) -> i64 {
        let (lo, hi) = if min_days <= max_days {
            (min_days, max_days)
        } else {
            (max_days, min_days)
        };
        let key = patient_key.trim_matches(['\0', ' ']);
        let h = self.mac(&[b"date\0", key.as_bytes()]);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        let span = (hi - lo) as u128 + 1;
        lo + (u64::from_be_bytes(b) as u128 % span) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_basics() {
        let k = Keys::new(b"top secret");
        let u = k.uid("1.2.3.4");
        assert!(u.starts_with("2.25.") && u.len() <= 64);
        // known answers computed independently (Python hmac/hashlib)
        assert_eq!(u, "2.25.213943347045350352288505895461443559684");
        assert_eq!(k.date_offset_days("PID1", -365, -1), -160);
        assert_eq!(u, k.uid("1.2.3.4\0"));
        assert_ne!(u, Keys::new(b"other").uid("1.2.3.4"));
        let p = k.pseudonym("PatientID", "12345", 16);
        assert_eq!(p.len(), 16);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_eq!(p, k.pseudonym("PatientID", "12345", 16));
        assert_ne!(p, k.pseudonym("AccessionNumber", "12345", 16));
        for i in 0..200 {
            let d = k.date_offset_days(&format!("p{i}"), -365, -1);
            assert!((-365..=-1).contains(&d));
        }
        assert_eq!(k.date_offset_days("x", 5, 5), 5);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("top secret") && !dbg.contains("116"));
    }
}
