//! Names the simulator makes: random-looking suffixes like the controllers' (`<owner>-<5>`), and
//! stable hashes of templates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand.String` (no vowels, no confusables).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<prefix>-<5 characters>`, unpredictable and different on every call.
pub fn random_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(prefix.as_bytes());
    hasher.update(nanos.to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let digest = hasher.finalize();
    let suffix: String = digest[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}-{suffix}")
}

/// The first `len` hex digits of the SHA-256 of `value`'s JSON (serde_json sorts map keys).
pub fn hash(value: &Value, len: usize) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_differ_and_look_like_the_controllers() {
        let a = random_name("cp");
        let b = random_name("cp");
        assert_ne!(a, b);
        assert_eq!(a.len(), "cp-".len() + 5);
        assert!(a[3..].bytes().all(|c| ALPHABET.contains(&c)));
    }
}
