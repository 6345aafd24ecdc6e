//! [`S3Store`]: objects in an S3 bucket below a prefix, with `aws-sdk-s3`.
//!
//! Credentials come from the standard chain (environment, profile, web identity, ECS
//! task role, IMDS), region from the config or the chain (else `us-east-1`). An
//! endpoint URL and path-style addressing make it work against moto or another
//! S3-compatible store. Every PUT asks for server-side encryption (`AES256`, or
//! `aws:kms` with a key id) unless turned off. Large uploads stream from the spooled
//! file; downloads stream into a file; listing paginates; deletes go in batches of 1000.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::{
    error::DisplayErrorContext,
    primitives::{ByteStream, Length},
    types::{Delete, MetadataDirective, ObjectIdentifier, ServerSideEncryption},
    Client,
};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::config::{SseMode, SyncConfig};
use super::key::ObjectKey;
use super::object_store::{ObjectStore, ObjectStoreError};

/// Server-side encryption of each PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    None,
    Aes256,
    Kms { key_id: String },
}

impl Sse {
    pub fn from_config(cfg: &SyncConfig) -> Self {
        match cfg.sse {
            SseMode::None => Sse::None,
            SseMode::Aes256 => Sse::Aes256,
            SseMode::Kms => Sse::Kms {
                key_id: cfg.sse_kms_key_id.clone().unwrap_or_default(),
            },
        }
    }
}

/// Objects in `s3://<bucket>/<prefix>/`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    sse: Sse,
}

impl S3Store {
    /// A store over an existing client (tests build one with static credentials).
    pub fn from_client(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        sse: Sse,
    ) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            sse,
        }
    }

    /// A store from the `[sync]` settings (`backend = "s3"`), credentials from the
    /// standard chain. No request is made here.
    pub async fn from_config(cfg: &SyncConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &cfg.s3_region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            b = b.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(url) = &cfg.s3_endpoint_url {
            b = b.endpoint_url(url);
        }
        b = b.force_path_style(cfg.s3_force_path_style);
        let client = Client::from_conf(b.build());
        Self::from_client(
            client,
            cfg.s3_bucket.clone(),
            cfg.s3_prefix.clone(),
            Sse::from_config(cfg),
        )
    }

    /// Starts a GET: `None` if the object does not exist; refuses one whose declared
    /// length exceeds `max_len`. Returns the response and that length.
    async fn open_object(
        &self,
        key: &ObjectKey,
        max_len: u64,
    ) -> Result<Option<(aws_sdk_s3::operation::get_object::GetObjectOutput, u64)>, ObjectStoreError>
    {
        let resp = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                return Err(ObjectStoreError::failed(
                    "get",
                    self.loc(key),
                    DisplayErrorContext(&e),
                ))
            }
        };
        let declared = resp.content_length().unwrap_or(0).max(0) as u64;
        if declared > max_len {
            return Err(ObjectStoreError::TooLarge {
                location: self.loc(key),
                size: declared,
                limit: max_len,
            });
        }
        Ok(Some((resp, declared)))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &ObjectKey) -> String {
        if self.prefix.is_empty() {
            key.as_str().to_string()
        } else {
            format!("{}/{}", self.prefix, key)
        }
    }

    fn loc(&self, key: &ObjectKey) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    async fn put_body(&self, key: &ObjectKey, body: ByteStream) -> Result<(), ObjectStoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(body);
        req = match &self.sse {
            Sse::None => req,
            Sse::Aes256 => req.server_side_encryption(ServerSideEncryption::Aes256),
            Sse::Kms { key_id } => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key_id),
        };
        req.send()
            .await
            .map_err(|e| ObjectStoreError::failed("put", self.loc(key), DisplayErrorContext(&e)))?;
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), ObjectStoreError> {
        self.put_body(key, ByteStream::from(data)).await
    }

    async fn put_file_range(
        &self,
        key: &ObjectKey,
        file: &Path,
        offset: u64,
        len: u64,
    ) -> Result<(), ObjectStoreError> {
        if len <= 1024 * 1024 {
            let data = super::object_store::read_range(file, offset, len)
                .await
                .map_err(|e| ObjectStoreError::failed("read", file.display().to_string(), e))?;
            return self.put(key, data).await;
        }
        let body = ByteStream::read_from()
            .path(file)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| ObjectStoreError::failed("read", file.display().to_string(), e))?;
        self.put_body(key, body).await
    }

    async fn get(&self, key: &ObjectKey, max_len: u64) -> Result<Option<Bytes>, ObjectStoreError> {
        let Some((resp, declared)) = self.open_object(key, max_len).await? else {
            return Ok(None);
        };
        let mut body = resp.body;
        let mut buf = Vec::with_capacity(declared as usize);
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ObjectStoreError::failed("get", self.loc(key), e))?
        {
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > max_len {
                return Err(ObjectStoreError::TooLarge {
                    location: self.loc(key),
                    size: buf.len() as u64,
                    limit: max_len,
                });
            }
        }
        Ok(Some(Bytes::from(buf)))
    }

    async fn get_to_file(
        &self,
        key: &ObjectKey,
        dest: &Path,
        max_len: u64,
    ) -> Result<Option<u64>, ObjectStoreError> {
        let Some((resp, _)) = self.open_object(key, max_len).await? else {
            return Ok(None);
        };
        let write_err =
            |e: std::io::Error| ObjectStoreError::failed("write", dest.display().to_string(), e);
        let mut out = tokio::fs::File::create(dest).await.map_err(write_err)?;
        let mut body = resp.body;
        let mut n = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ObjectStoreError::failed("get", self.loc(key), e))?
        {
            n += chunk.len() as u64;
            if n > max_len {
                return Err(ObjectStoreError::TooLarge {
                    location: self.loc(key),
                    size: n,
                    limit: max_len,
                });
            }
            out.write_all(&chunk).await.map_err(write_err)?;
        }
        out.flush().await.map_err(write_err)?;
        Ok(Some(n))
    }

    async fn refresh(&self, key: &ObjectKey) -> Result<bool, ObjectStoreError> {
        let full = self.full_key(key);
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&full)
            .copy_source(copy_source(&self.bucket, &full))
            .metadata_directive(MetadataDirective::Replace);
        req = match &self.sse {
            Sse::None => req,
            Sse::Aes256 => req.server_side_encryption(ServerSideEncryption::Aes256),
            Sse::Kms { key_id } => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key_id),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchKey") => {
                Ok(false)
            }
            Err(e) => Err(ObjectStoreError::failed(
                "refresh",
                self.loc(key),
                DisplayErrorContext(&e),
            )),
        }
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectStoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(r) => Ok(Some(r.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(ObjectStoreError::failed(
                "head",
                self.loc(key),
                DisplayErrorContext(&e),
            )),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| {
                ObjectStoreError::failed("delete", self.loc(key), DisplayErrorContext(&e))
            })?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[ObjectKey]) -> Result<(), ObjectStoreError> {
        let where_ = format!("s3://{}/{}", self.bucket, self.prefix);
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ObjectStoreError::failed("delete", where_.clone(), e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| ObjectStoreError::failed("delete", where_.clone(), e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| {
                    ObjectStoreError::failed("delete", where_.clone(), DisplayErrorContext(&e))
                })?;
            if let Some(err) = out.errors().first() {
                return Err(ObjectStoreError::failed(
                    "delete",
                    format!("s3://{}/{}", self.bucket, err.key().unwrap_or("?")),
                    format!(
                        "{} ({} of {} keys failed)",
                        err.message().or(err.code()).unwrap_or("unknown error"),
                        out.errors().len(),
                        chunk.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, ObjectStoreError> {
        let full = format!("{}/", self.full_key(prefix));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                ObjectStoreError::failed(
                    "list",
                    format!("s3://{}/{full}", self.bucket),
                    DisplayErrorContext(&e),
                )
            })?;
            for obj in page.contents() {
                let Some(k) = obj.key().and_then(|k| k.strip_prefix(&strip)) else {
                    continue;
                };
                // Keys written by something else that are not valid keys are ignored.
                if let Ok(k) = ObjectKey::new(k) {
                    out.push(k);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `x-amz-copy-source`: `<bucket>/<key>`, URL-encoded (`/` kept).
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in format!("{bucket}/{key}").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
