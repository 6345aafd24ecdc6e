variable "name" {
  description = "Function name (also the prefix of its role, log group and schedule)."
  type        = string
}

variable "description" {
  description = "What the function does."
  type        = string
  default     = ""
}

variable "zip_path" {
  description = "Path of the deployment zip (built with cargo lambda; contains the `bootstrap` executable)."
  type        = string
}

variable "architecture" {
  description = "Instruction set of the binary: x86_64 or arm64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression, e.g. rate(1 minute) or cron(0/5 * * * ? *)."
  type        = string
}

variable "schedule_timezone" {
  description = "Time zone of cron schedule expressions."
  type        = string
  default     = "UTC"
}

variable "timeout" {
  description = "Function timeout in seconds."
  type        = number
  default     = 60
}

variable "memory_size" {
  description = "Function memory in MiB."
  type        = number
  default     = 256
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions (1: runs never overlap)."
  type        = number
  default     = 1
}

variable "environment" {
  description = "Environment of the function (no secrets: read them from Secrets Manager at run time)."
  type        = map(string)
  default     = {}
}

variable "policy_json" {
  description = "IAM policy document (JSON) with exactly the permissions the function needs besides its own logs."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets when the function must run in the VPC (e.g. to reach Redis); empty: outside the VPC."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the function when in the VPC."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the function's log group in days."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key of the log group and the schedule (null: AWS-owned keys). Environment variables hold no secrets and use the Lambda service key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
