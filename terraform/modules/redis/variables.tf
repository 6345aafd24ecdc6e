variable "name" {
  description = "Replication group ID (also the prefix of its subnet group and secret)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (two AZs) of the cache nodes."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the cache nodes (6379 from the control plane and the Lambdas only)."
  type        = list(string)
}

variable "create_replication_group" {
  description = "Create the replication group (false only where ElastiCache cannot be emulated faithfully, e.g. moto; the auth token secret is created either way)."
  type        = bool
  default     = true
}

variable "node_type" {
  description = "Cache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "num_cache_clusters" {
  description = "Number of nodes (primary + replicas). Multi-AZ needs at least 2."
  type        = number
  default     = 2
}

variable "multi_az" {
  description = "Multi-AZ with automatic failover."
  type        = bool
  default     = true
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "parameter_group_name" {
  description = "Parameter group."
  type        = string
  default     = "default.redis7"
}

variable "snapshot_retention_limit" {
  description = "Days of automatic snapshots kept."
  type        = number
  default     = 7
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and for the auth token secret (null: AWS-managed keys)."
  type        = string
  default     = null
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the auth token secret when deleted (0 = immediate, for test environments)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
