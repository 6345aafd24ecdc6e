variable "name" {
  description = "Prefix of the repository names (<name>/<repository>)."
  type        = string
}

variable "repositories" {
  description = "Repositories to create: the workspace image, the proxy sidecar, the control plane and the metrics collector."
  type        = list(string)
  default     = ["workspace", "proxy-sidecar", "control-plane", "metrics-collector"]
}

variable "kms_key_arn" {
  description = "KMS key encrypting the images (null: AES256)."
  type        = string
  default     = null
}

variable "untagged_expiry_days" {
  description = "Untagged images (layers of superseded pushes) expire after this many days."
  type        = number
  default     = 14
}

variable "force_delete" {
  description = "Delete repositories that still hold images (test environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
