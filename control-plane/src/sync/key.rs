//! Object keys and the layout of a conversation's objects.
//!
//! An [`ObjectKey`] is checked once when made: relative, `/`-separated, non-empty
//! components other than `.` and `..`, no NUL, at most [`MAX_KEY_BYTES`]. Every store
//! takes only `ObjectKey`s, so no key can climb out of the store's root or prefix.
//!
//! Layout (below the store's own prefix):
//!
//! ```text
//! <tenant>/<conversation>/manifest.json
//! <tenant>/<conversation>/files/<workspace path>
//! <tenant>/<conversation>/files-by-hash/<sha256 of the path>   (paths too long for a key)
//! ```

use sha2::{Digest, Sha256};

use crate::store::ConversationKey;

/// Longest key (S3 allows 1024 bytes; a store prefix of up to 256 bytes comes on top).
pub const MAX_KEY_BYTES: usize = 760;
/// Longest component kept verbatim in a file key (room for local-store name encoding).
pub const MAX_COMPONENT_BYTES: usize = 200;

/// A validated object key relative to a store's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key {key:?}: {reason}")]
pub struct KeyError {
    pub key: String,
    pub reason: &'static str,
}

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Result<Self, KeyError> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some("empty")
        } else if key.len() > MAX_KEY_BYTES {
            Some("too long")
        } else if key.contains('\0') {
            Some("contains a NUL byte")
        } else if key.starts_with('/') {
            Some("absolute")
        } else if key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            Some("has an empty, `.` or `..` component")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(KeyError { key, reason }),
            None => Ok(ObjectKey(key)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key followed by more components (validated again).
    pub fn join(&self, rest: &str) -> Result<Self, KeyError> {
        Self::new(format!("{}/{}", self.0, rest))
    }

    /// The components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one conversation's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationLayout {
    prefix: ObjectKey,
}

impl ConversationLayout {
    /// Refuses tenant or conversation ids that are not `^[A-Za-z0-9._-]{1,128}$` (or are
    /// `.`/`..`), so one conversation's prefix never overlaps another's.
    pub fn new(key: &ConversationKey) -> Result<Self, KeyError> {
        for id in [&key.tenant_id, &key.conversation_id] {
            if !wire::is_valid_conversation_id(id) {
                return Err(KeyError {
                    key: key.to_string(),
                    reason: "tenant and conversation ids must match ^[A-Za-z0-9._-]{1,128}$",
                });
            }
        }
        Ok(ConversationLayout {
            prefix: ObjectKey::new(format!("{}/{}", key.tenant_id, key.conversation_id))?,
        })
    }

    /// `<tenant>/<conversation>`: everything of the conversation.
    pub fn prefix(&self) -> &ObjectKey {
        &self.prefix
    }

    /// `<tenant>/<conversation>/manifest.json`.
    pub fn manifest(&self) -> ObjectKey {
        ObjectKey(format!("{}/manifest.json", self.prefix))
    }

    /// The object of a workspace file. `path` must already be a validated manifest path
    /// (relative, canonical); a path whose key would be too long, or with a component
    /// longer than [`MAX_COMPONENT_BYTES`], is stored under `files-by-hash/`.
    pub fn file(&self, path: &str) -> Result<ObjectKey, KeyError> {
        let direct = format!("{}/files/{}", self.prefix, path);
        let fits = direct.len() <= MAX_KEY_BYTES
            && path.split('/').all(|c| c.len() <= MAX_COMPONENT_BYTES);
        if fits {
            ObjectKey::new(direct)
        } else {
            let digest = Sha256::digest(path.as_bytes());
            ObjectKey::new(format!(
                "{}/files-by-hash/{}",
                self.prefix,
                hex::encode(digest)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for ok in ["a", "a/b", "t/c/files/x y/é.txt", "a/.hidden", "a/..b"] {
            assert_eq!(ObjectKey::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "/abs", "a//b", "a/", "./a", "a/./b", "..", "a/../b", "a/..", "a\0b",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::new("x".repeat(MAX_KEY_BYTES + 1)).is_err());
        let k = ObjectKey::new("a").unwrap();
        assert!(k.join("../b").is_err());
        assert_eq!(k.join("b/c").unwrap().as_str(), "a/b/c");
    }

    #[test]
    fn layout() {
        let l = ConversationLayout::new(&ConversationKey::new("acme", "conv-1")).unwrap();
        assert_eq!(l.prefix().as_str(), "acme/conv-1");
        assert_eq!(l.manifest().as_str(), "acme/conv-1/manifest.json");
        assert_eq!(
            l.file("src/main.py").unwrap().as_str(),
            "acme/conv-1/files/src/main.py"
        );
        let long = format!("{}/x", "d".repeat(250));
        let k = l.file(&long).unwrap();
        assert!(k.as_str().starts_with("acme/conv-1/files-by-hash/"), "{k}");
        assert_eq!(k.as_str().len(), "acme/conv-1/files-by-hash/".len() + 64);
        // A path with `..` cannot become a key that leaves the conversation.
        assert!(l.file("../other/x").is_err());
        for (t, c) in [("acme", ".."), ("..", "c"), ("a/b", "c"), ("acme", "")] {
            assert!(
                ConversationLayout::new(&ConversationKey::new(t, c)).is_err(),
                "{t}/{c}"
            );
        }
    }
}
