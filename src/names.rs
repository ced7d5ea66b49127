//! Usernames: what is allowed, and the human-readable ones generated for anonymous signups.

use rand::Rng;
use rand::seq::IndexedRandom;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 32;

/// Names that would confuse people or future routes (`/v1/users/me`) if someone owned them.
const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "system",
    "hearth",
    "api",
    "www",
    "support",
    "null",
    "undefined",
    "me",
    "anonymous",
    "everyone",
];

/// Checks the documented rule: 3–32 characters of `a-z`, `0-9`, `-`, `_`, not reserved.
///
/// # Errors
/// A message saying what is allowed.
pub fn validate(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !(MIN_LEN..=MAX_LEN).contains(&name.len()) || !ok_chars {
        return Err(format!(
            "usernames are {MIN_LEN}-{MAX_LEN} characters of lowercase letters, digits, '-' and '_'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("{name:?} is reserved"));
    }
    Ok(())
}

/// True when `name` could be a user; used to answer `unauthorized` early for junk targets.
pub fn plausible(name: &str) -> bool {
    validate(name).is_ok()
}

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "bright", "calm", "clever", "cosy", "crisp", "daring", "eager", "fancy",
    "gentle", "glad", "golden", "happy", "hardy", "humble", "jolly", "keen", "kind", "lively",
    "lucky", "merry", "mellow", "misty", "nimble", "noble", "patient", "plucky", "polite", "proud",
    "quick", "quiet", "rapid", "rosy", "rustic", "shy", "silver", "sleepy", "snowy", "sunny",
    "swift", "tidy", "tiny", "vivid", "warm", "wise", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "crane", "deer", "dolphin", "eagle", "falcon", "ferret", "finch",
    "fox", "gecko", "heron", "ibis", "koala", "lark", "lemur", "lynx", "marten", "mole", "moose",
    "newt", "orca", "otter", "owl", "panda", "puffin", "quail", "rabbit", "raven", "robin",
    "salmon", "seal", "shrew", "sparrow", "stoat", "swan", "tapir", "tern", "tiger", "toad",
    "trout", "turtle", "walrus", "weasel", "whale", "wolf", "wren", "yak", "zebra",
];

/// A name like `quiet-otter-4821`: about 22 million combinations. Uniqueness is not assumed;
/// the writer refuses an existing name and signup draws again.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet");
    let animal = ANIMALS.choose(&mut rng).copied().unwrap_or("otter");
    let number: u16 = rng.random_range(1000..10_000);
    format!("{adjective}-{animal}-{number}")
}

/// A random password for `hearth user create` without `--password-stdin`: 20 characters
/// from 56 unambiguous letters and digits, about 116 bits.
pub fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate("ann").is_ok());
        assert!(validate("a_b-9").is_ok());
        assert!(validate("an").is_err());
        assert!(validate("Ann").is_err());
        assert!(validate("ann smith").is_err());
        assert!(validate("ännа").is_err());
        assert!(validate(&"a".repeat(33)).is_err());
        assert!(validate("admin").is_err());
        for _ in 0..100 {
            assert!(validate(&generate()).is_ok());
        }
    }
}
