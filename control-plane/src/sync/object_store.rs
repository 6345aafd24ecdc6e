//! The object-store seam of file sync: put/get/head/delete/list of whole objects by
//! [`ObjectKey`]. Implementations: [`super::local::LocalDirStore`] (a directory, the
//! embedded default) and [`super::s3::S3Store`] (S3 via `aws-sdk-s3`).

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;

use super::key::ObjectKey;

/// A failed object-store operation.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("{op} {location}: {message}")]
    Failed {
        op: &'static str,
        location: String,
        message: String,
    },
    #[error("{location} is {size} bytes, more than the {limit} bytes expected")]
    TooLarge {
        location: String,
        size: u64,
        limit: u64,
    },
}

impl ObjectStoreError {
    pub fn failed(op: &'static str, location: impl Into<String>, message: impl ToString) -> Self {
        ObjectStoreError::Failed {
            op,
            location: location.into(),
            message: message.to_string(),
        }
    }
}

/// A store of whole objects.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Where the objects live, for logs (`local:/var/...`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Writes an object (replacing it).
    async fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), ObjectStoreError>;

    /// Writes an object from `len` bytes at `offset` of a local file (a spooled tar).
    /// The default reads the range into memory.
    async fn put_file_range(
        &self,
        key: &ObjectKey,
        file: &Path,
        offset: u64,
        len: u64,
    ) -> Result<(), ObjectStoreError> {
        let data = read_range(file, offset, len)
            .await
            .map_err(|e| ObjectStoreError::failed("read", file.display().to_string(), e))?;
        self.put(key, data).await
    }

    /// Reads an object; `None` when it does not exist. Refuses (without reading it all)
    /// an object larger than `max_len`.
    async fn get(&self, key: &ObjectKey, max_len: u64) -> Result<Option<Bytes>, ObjectStoreError>;

    /// Copies an object into the local file `dest` (created or truncated); its size, or
    /// `None` when it does not exist. The default goes through [`ObjectStore::get`].
    async fn get_to_file(
        &self,
        key: &ObjectKey,
        dest: &Path,
        max_len: u64,
    ) -> Result<Option<u64>, ObjectStoreError> {
        let Some(data) = self.get(key, max_len).await? else {
            return Ok(None);
        };
        tokio::fs::write(dest, &data)
            .await
            .map_err(|e| ObjectStoreError::failed("write", dest.display().to_string(), e))?;
        Ok(Some(data.len() as u64))
    }

    /// Rewrites an object in place so that its age starts again (S3 lifecycle rules
    /// count days from the last write; see `deployment/s3/`). `false` when it does not
    /// exist.
    async fn refresh(&self, key: &ObjectKey) -> Result<bool, ObjectStoreError>;

    /// The size of an object, `None` when it does not exist.
    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectStoreError>;

    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError>;

    /// Deletes several objects (S3: batches of 1000).
    async fn delete_many(&self, keys: &[ObjectKey]) -> Result<(), ObjectStoreError> {
        for k in keys {
            self.delete(k).await?;
        }
        Ok(())
    }

    /// Every key below `prefix` (`prefix/...`, at any depth), sorted.
    async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, ObjectStoreError>;
}

/// Reads `len` bytes at `offset` of `file`.
pub async fn read_range(file: &Path, offset: u64, len: u64) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(file).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let cap = usize::try_from(len).map_err(|_| std::io::Error::other("range too large"))?;
    let mut buf = Vec::with_capacity(cap);
    (&mut f).take(len).read_to_end(&mut buf).await?;
    if buf.len() as u64 != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the spooled file is shorter than expected",
        ));
    }
    Ok(Bytes::from(buf))
}
