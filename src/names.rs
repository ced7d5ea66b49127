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

/// Longest document name.
pub const MAX_DOC_NAME: usize = 64;

/// Checks the documented rule for a named document's name: 1–64 characters of `a-z`, `0-9`,
/// `-`, `_`, `.`, not starting with `.` (so `.` and `..` are never names, and a name is
/// safe in a path segment and a storage key as it is). A stream's name is such a name after
/// a `~` (`store/streams.rs`).
///
/// # Errors
/// A message saying what is allowed.
pub fn validate_doc(name: &str) -> Result<(), String> {
    let name = name.strip_prefix('~').unwrap_or(name);
    let ok_chars = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
    });
    if !(1..=MAX_DOC_NAME).contains(&name.len()) || !ok_chars || name.starts_with('.') {
        return Err(format!(
            "document names are 1-{MAX_DOC_NAME} characters of lowercase letters, digits, '-', '_' and '.', not starting with '.'"
        ));
    }
    Ok(())
}

/// A document's address as clients write it: `owner` (the default document) or
/// `owner/name`. Its string form is also the document's storage key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub owner: String,
    pub name: Option<String>,
}

impl Target {
    /// Whether `s` is `owner` or `owner/name` with both parts possible (nothing allocated:
    /// every command checks its target).
    pub fn valid(s: &str) -> bool {
        match s.split_once('/') {
            Some((owner, name)) => plausible(owner) && validate_doc(name).is_ok(),
            None => plausible(s),
        }
    }

    /// Parses `owner` or `owner/name`; `None` when either part could not exist.
    pub fn parse(s: &str) -> Option<Target> {
        let (owner, name) = match s.split_once('/') {
            Some((owner, name)) => (owner, Some(name)),
            None => (s, None),
        };
        if !plausible(owner) || name.is_some_and(|n| validate_doc(n).is_err()) {
            return None;
        }
        Some(Target {
            owner: owner.to_owned(),
            name: name.map(str::to_owned),
        })
    }

    /// The storage key: `owner` or `owner/name`.
    pub fn key(&self) -> String {
        match &self.name {
            None => self.owner.clone(),
            Some(name) => format!("{}/{name}", self.owner),
        }
    }
}

/// Keys of `owner`'s named documents lie strictly between these two (`owner/` and `owner0`:
/// `0` follows `/` in ASCII, and usernames hold neither), in name order.
pub fn named_range(owner: &str) -> (String, String) {
    (format!("{owner}/"), format!("{owner}0"))
}

/// The owner part of a document key (`owner` or `owner/name`).
pub fn owner_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(owner, _)| owner)
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

    #[test]
    fn document_names_and_targets() {
        for ok in ["groceries", "a", "2026.budget", "x_y-z", &"n".repeat(64)] {
            assert!(validate_doc(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".x",
            "a/b",
            "Café",
            "é",
            "A",
            "a b",
            &"n".repeat(65),
        ] {
            assert!(validate_doc(bad).is_err(), "{bad:?}");
        }
        let t = Target::parse("ann/groceries").expect("valid");
        assert_eq!(
            (t.owner.as_str(), t.name.as_deref()),
            ("ann", Some("groceries"))
        );
        assert_eq!(t.key(), "ann/groceries");
        assert_eq!(
            Target::parse("ann").map(|t| t.key()).as_deref(),
            Some("ann")
        );
        for bad in [
            "ann/", "ann/..", "ann/a/b", "an/x", "/x", "ann/.x", "admin/x",
        ] {
            assert!(Target::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(owner_of("ann/groceries"), "ann");
        assert_eq!(owner_of("ann"), "ann");
    }
}
