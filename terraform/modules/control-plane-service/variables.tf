variable "name" {
  description = "Name of the service; prefix of its ALB, roles and task family."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster running the service and the workspace tasks."
  type        = string
}

variable "cluster_name" {
  description = "Name of that ECS cluster."
  type        = string
}

variable "image" {
  description = "Control-plane image."
  type        = string
}

variable "container_user" {
  description = "uid:gid of the control-plane container (the control-plane image's user; it owns the spool directory in the image)."
  type        = string
  default     = "10001:10001"
}

variable "max_concurrent_syncs" {
  description = "Syncs one control-plane task may run at once: with spool_gib_per_sync it sizes the task's ephemeral storage on Fargate."
  type        = number
  default     = 16
}

variable "spool_gib_per_sync" {
  description = "Spool space one sync may need (GiB): a workspace's largest total size (sync.max_total_bytes, 1 GiB by default)."
  type        = number
  default     = 1
}

variable "metrics_collector_image" {
  description = "ADOT collector image (in the account's ECR) scraping /metrics into CloudWatch EMF; null: no metrics collection."
  type        = string
  default     = null
}

variable "metrics_log_group_name" {
  description = "Log group receiving the EMF records of the control plane's metrics."
  type        = string
  default     = null
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the control plane's Prometheus metrics."
  type        = string
  default     = "Workspaces/ControlPlane"
}

variable "container_port" {
  description = "Port the control plane listens on."
  type        = number
  default     = 8080
}

variable "launch_type" {
  description = "FARGATE (default: the control plane holds the RunTask/PassRole role and must not share a kernel with untrusted workspaces) or EC2."
  type        = string
  default     = "FARGATE"

  validation {
    condition     = contains(["FARGATE", "EC2"], var.launch_type)
    error_message = "launch_type must be FARGATE or EC2."
  }
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
  default     = 4096
}

variable "desired_count" {
  description = "Initial number of tasks (autoscaling adjusts it between min_count and max_count)."
  type        = number
  default     = 2
}

variable "min_count" {
  description = "Minimum number of tasks."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Maximum number of tasks."
  type        = number
  default     = 4
}

variable "enable_autoscaling" {
  description = "Target-tracking autoscaling of the service (false only where Application Auto Scaling tagging is unavailable, e.g. moto)."
  type        = bool
  default     = true
}

variable "cpu_target" {
  description = "Target average CPU utilisation (percent) of the service autoscaling."
  type        = number
  default     = 70
}

variable "subnet_ids" {
  description = "Private subnets of the tasks and of the internal ALB."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "security_group_id" {
  description = "Security group of the control-plane tasks."
  type        = string
}

variable "alb_security_group_id" {
  description = "Security group of the internal ALB."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the ALB's HTTPS listener."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for ALB access logs (null: none)."
  type        = string
  default     = null
}

variable "health_check_path" {
  description = "Health check path of the target group."
  type        = string
  default     = "/health/ready"
}

variable "log_group_name" {
  description = "CloudWatch log group of the control-plane container."
  type        = string
}

variable "workspace_task_definition_arn" {
  description = "ARN of the workspace task definition (any revision of its family may be run)."
  type        = string
}

variable "workspace_execution_role_arn" {
  description = "Execution role of the workspace tasks: the only role the control plane may pass."
  type        = string
}

variable "workspace_subnet_ids" {
  description = "Subnets the control plane passes to RunTask."
  type        = list(string)
}

variable "workspace_security_group_id" {
  description = "Security group the control plane passes to RunTask."
  type        = string
}

variable "workspace_capacity_provider" {
  description = "Capacity provider the control plane names in RunTask."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the workspace bucket."
  type        = string
}

variable "bucket_name" {
  description = "Name of the workspace bucket."
  type        = string
}

variable "bucket_kms_key_arn" {
  description = "KMS key of the workspace bucket (null: SSE-S3)."
  type        = string
  default     = null
}

variable "redis_endpoint" {
  description = "Primary endpoint address of Redis (null: no Redis URL is configured; test environments only)."
  type        = string
  default     = null
}

variable "redis_port" {
  description = "Redis port."
  type        = number
  default     = 6379
}

variable "redis_auth_secret_arn" {
  description = "Secret holding the Redis auth token (injected by the execution role)."
  type        = string
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the API tokens secret when deleted (0 = immediate, for test environments)."
  type        = number
  default     = 30
}

variable "secrets_kms_key_arn" {
  description = "KMS key encrypting the API tokens secret and the Redis auth secret (null: aws/secretsmanager)."
  type        = string
  default     = null
}

variable "environment" {
  description = "Extra environment of the control-plane container (overrides the module's defaults)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
