variable "name" {
  description = "Task definition family; also the prefix of the execution role and secrets."
  type        = string
}

variable "region" {
  description = "AWS region (awslogs and the sidecar's AWS_REGION)."
  type        = string
}

variable "agent_image" {
  description = "Image of the workspace (agent) container."
  type        = string
}

variable "proxy_image" {
  description = "Image of the proxy sidecar container (must contain /usr/local/bin/proxy-sidecar)."
  type        = string
}

variable "agent_user" {
  description = "uid:gid of the agent container (the sandbox; the workspace image's appuser)."
  type        = string
  default     = "1000:1000"
}

variable "proxy_user" {
  description = "uid:gid of the proxy sidecar (the proxy-sidecar image's user). Must differ from agent_user: the sidecar holds the signer's key."
  type        = string
  default     = "65532:65532"

  validation {
    condition     = can(regex("^[1-9][0-9]*:[1-9][0-9]*$", var.proxy_user)) && split(":", var.proxy_user)[0] != split(":", var.agent_user)[0]
    error_message = "proxy_user must be a non-root numeric uid:gid, different from agent_user's uid."
  }
}

variable "agent_port" {
  description = "TCP port of the workspace agent (the only port the task exposes)."
  type        = number
  default     = 9000
}

variable "proxy_listen" {
  description = "Listen address of the proxy sidecar inside the task's network namespace (loopback only)."
  type        = string
  default     = "127.0.0.1:8080"

  validation {
    condition     = startswith(var.proxy_listen, "127.0.0.1:")
    error_message = "The proxy sidecar must listen on loopback (127.0.0.1:PORT) only."
  }
}

variable "proxy_admin_listen" {
  description = "Address of the sidecar's /health and /metrics listener (loopback only)."
  type        = string
  default     = "127.0.0.1:9901"

  validation {
    condition     = startswith(var.proxy_admin_listen, "127.0.0.1:")
    error_message = "The sidecar's admin listener must be on loopback (127.0.0.1:PORT) only."
  }
}

variable "proxy_allow" {
  description = "Hosts the sidecar lets the workspace reach besides Bedrock (PROXY_ALLOW; exact hosts or *.domain)."
  type        = list(string)
  default     = []
}

variable "task_cpu" {
  description = "Task-level CPU units: a hard limit for the whole task on Linux EC2 (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "agent_cpu" {
  description = "CPU units reserved for the agent container (shares within the task)."
  type        = number
  default     = 896
}

variable "agent_memory" {
  description = "Hard memory limit of the agent container in MiB (includes its tmpfs pages; swap is disabled)."
  type        = number
  default     = 2048
}

variable "agent_memory_reservation" {
  description = "Soft memory reservation of the agent container in MiB."
  type        = number
  default     = 1024
}

variable "proxy_cpu" {
  description = "CPU units reserved for the proxy sidecar."
  type        = number
  default     = 128
}

variable "proxy_memory" {
  description = "Hard memory limit of the proxy sidecar in MiB."
  type        = number
  default     = 256
}

variable "proxy_memory_reservation" {
  description = "Soft memory reservation of the proxy sidecar in MiB."
  type        = number
  default     = 128
}

variable "agent_tmpfs" {
  description = "tmpfs mounts of the agent container (size in MiB). The root filesystem is read-only; these are the only writable paths."
  type = list(object({
    path    = string
    size    = number
    options = list(string)
  }))
  default = [
    { path = "/tmp", size = 512, options = ["rw", "nosuid", "nodev", "noexec"] },
    { path = "/var/tmp", size = 256, options = ["rw", "nosuid", "nodev", "noexec"] },
    { path = "/run", size = 64, options = ["rw", "nosuid", "nodev", "noexec"] },
    { path = "/home/appuser", size = 256, options = ["rw", "nosuid", "nodev"] },
    { path = "/workspace", size = 1024, options = ["rw", "nosuid", "nodev"] },
  ]
}

variable "proxy_tmpfs" {
  description = "tmpfs mounts of the proxy sidecar (size in MiB)."
  type = list(object({
    path    = string
    size    = number
    options = list(string)
  }))
  default = [
    { path = "/tmp", size = 16, options = ["rw", "nosuid", "nodev", "noexec"] },
  ]
}

variable "agent_environment" {
  description = "Extra environment of the agent container. Must not hold credentials (the sandbox never does)."
  type        = map(string)
  default     = {}
}

variable "proxy_environment" {
  description = "Extra environment of the proxy sidecar (allowlist, MCP routes, log level...)."
  type        = map(string)
  default     = {}
}

variable "proxy_secrets" {
  description = "Secrets injected into the proxy sidecar only (env name => Secrets Manager ARN, optionally with :json-key:: suffix), e.g. MCP tokens."
  type        = map(string)
  default     = {}
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key encrypting the proxy secrets (null: aws/secretsmanager)."
  type        = string
  default     = null
}

variable "agent_log_group_name" {
  description = "CloudWatch log group of the agent container."
  type        = string
}

variable "proxy_log_group_name" {
  description = "CloudWatch log group of the proxy sidecar."
  type        = string
}

variable "bedrock_model_arns" {
  description = <<-EOT
    Bedrock ARNs the sidecar's signing identity may invoke. A cross-region inference
    profile (inference-profile/us.anthropic.claude-...) needs the profile's ARN and the
    foundation model's ARN in every destination region of the profile: list
    arn:aws:bedrock:<region>::foundation-model/<model-id> for each (or <region> = *).
  EOT
  type        = list(string)

  validation {
    condition = length(var.bedrock_model_arns) > 0 && alltrue([for a in var.bedrock_model_arns :
    can(regex("^arn:aws[a-z-]*:bedrock:([a-z0-9-]+|\\*):([0-9]{12})?:(foundation-model|inference-profile|application-inference-profile)/[A-Za-z0-9.:_-]+$", a))])
    error_message = "bedrock_model_arns must be Bedrock foundation-model or inference-profile ARNs."
  }

  # Claude Code calls models through cross-region inference profiles: a profile without
  # its foundation model is refused by Bedrock at invocation time, not at apply time.
  validation {
    condition = alltrue([for a in var.bedrock_model_arns : anytrue([for f in var.bedrock_model_arns :
      endswith(f, "::foundation-model/${join(".", slice(split(".", split("/", a)[1]), 1, length(split(".", split("/", a)[1]))))}")
    ]) if strcontains(a, ":inference-profile/")])
    error_message = "Every inference profile (inference-profile/<geo>.<model-id>) needs the foundation-model/<model-id> ARNs of its destination regions in bedrock_model_arns."
  }
}

variable "bedrock_vpc_endpoint_id" {
  description = "bedrock-runtime interface endpoint: the signing identity's keys work only through it (null: no such condition)."
  type        = string
  default     = null
}

variable "signer_force_destroy" {
  description = "Destroying the signer user also deletes its out-of-band access keys (false only where the IAM API is incomplete, e.g. moto: delete the keys first)."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the Bedrock credentials secret when deleted (0 = immediate, for test environments)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
