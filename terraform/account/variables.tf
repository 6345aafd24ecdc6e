variable "region" {
  description = "AWS region of the baseline (account settings are per region)."
  type        = string
}

variable "manage_ecs_account_settings" {
  description = "Set the ECS account defaults (false only where the API does not exist, e.g. moto: the parameters then say \"unmanaged\")."
  type        = bool
  default     = true
}

variable "parameter_prefix" {
  description = "SSM parameter path under which the baseline publishes its settings for the environments."
  type        = string
  default     = "/workspaces/account-baseline"

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+[^/]$", var.parameter_prefix))
    error_message = "parameter_prefix must be an absolute SSM path without a trailing slash."
  }
}

variable "ecr_namespace" {
  description = "Prefix of the ECR repositories (<namespace>/workspace, /proxy-sidecar, /control-plane, /metrics-collector)."
  type        = string
  default     = "workspaces"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
