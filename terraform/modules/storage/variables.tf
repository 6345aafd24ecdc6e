variable "bucket_name" {
  description = "Name of the workspace bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS (null: SSE-S3 with AES256)."
  type        = string
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Noncurrent object versions are deleted this many days after becoming noncurrent."
  type        = number
  default     = 30
}

variable "archive_after_days" {
  description = "Current objects move to S3 Glacier Instant Retrieval this many days after creation (a restore still reads them with a plain GET)."
  type        = number
  default     = 90
}

variable "expire_after_days" {
  description = "Archived objects are deleted this many days after creation (the same rule as deployment/s3/lifecycle.json). The sync rewrites unchanged objects of active conversations before they age out (sync.refresh_after_days)."
  type        = number
  default     = 180

  validation {
    condition     = var.expire_after_days > var.archive_after_days
    error_message = "Objects must be archived before they expire."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Incomplete multipart uploads are aborted after this many days."
  type        = number
  default     = 7
}

variable "force_destroy" {
  description = "Allow destroying a non-empty bucket (test environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
