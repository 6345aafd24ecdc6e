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
  description = "Current objects move to S3 Glacier Flexible Retrieval this many days after creation."
  type        = number
  default     = 90
}

variable "delete_archived_after_days" {
  description = "Archived objects are deleted this many days after their move to Glacier (expiration = archive_after_days + this)."
  type        = number
  default     = 180
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
