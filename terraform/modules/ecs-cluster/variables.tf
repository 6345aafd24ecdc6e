variable "name" {
  description = "Name of the ECS cluster; also the prefix of its ASG, launch template and capacity provider."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the container instances (two AZs)."
  type        = list(string)
}

variable "instance_security_group_ids" {
  description = "Security groups of the container instances."
  type        = list(string)
}

variable "instance_type" {
  description = "EC2 instance type of the workspace hosts (memory is the bottleneck: ~2.3 GiB per workspace)."
  type        = string
  default     = "c6i.2xlarge"
}

variable "ami_id" {
  description = "AMI of the workspace hosts, normally the Packer-built one. Null: the recommended ECS-optimized Amazon Linux 2023 AMI from SSM (without the AMI hardening of ami/, which only the Packer AMI carries)."
  type        = string
  default     = null
}

variable "require_custom_ami" {
  description = "Refuse to plan without ami_id (staging and production: the stock ECS AMI lacks the host hardening)."
  type        = bool
  default     = true
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the ECS-optimized AMI ID, used when ami_id is null."
  type        = string
  default     = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

variable "root_volume_size" {
  description = "Root volume size in GiB (images and container layers live there)."
  type        = number
  default     = 50
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the encrypted root volume (null: the account's default EBS key)."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Minimum number of in-service instances."
  type        = number
  default     = 2
}

variable "max_size" {
  description = "Maximum number of in-service instances."
  type        = number
  default     = 10
}

variable "warm_pool_min_size" {
  description = "Minimum number of stopped, pre-initialized instances in the EC2 warm pool."
  type        = number
  default     = 1
}

variable "warm_pool_max_prepared" {
  description = "Maximum instances in service plus prepared in the warm pool (null: max_size)."
  type        = number
  default     = null
}

variable "target_capacity" {
  description = "Target capacity (percent) of the capacity provider's managed scaling."
  type        = number
  default     = 85

  validation {
    condition     = var.target_capacity > 0 && var.target_capacity <= 100
    error_message = "target_capacity must be in 1..100."
  }
}

variable "awsvpc_trunking" {
  description = "The account's awsvpcTrunking setting as published by the account baseline (terraform/account/); the ASG is created only once it is \"enabled\"."
  type        = string
  default     = null
}

variable "require_awsvpc_trunking" {
  description = "Refuse to plan the ASG unless awsvpc_trunking is \"enabled\" (false only where the account setting cannot exist, e.g. moto)."
  type        = bool
  default     = true
}

variable "instance_warmup_seconds" {
  description = "Seconds a new host needs before it counts as healthy in an instance refresh (boot, ECS agent registration)."
  type        = number
  default     = 300
}

variable "task_pids_limit" {
  description = "ECS_TASK_PIDS_LIMIT: pids.max of each task's cgroup (agent container, sidecar and its threads). Bounds a fork bomb to its task."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_pids_limit >= 256 && var.task_pids_limit <= 4194304
    error_message = "task_pids_limit must be in 256..4194304 (room for the agent, the sidecar's threads and the workload)."
  }
}

variable "container_insights" {
  description = "Container Insights mode of the cluster: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"
}

variable "image_pull_behavior" {
  description = "ECS_IMAGE_PULL_BEHAVIOR of the agent."
  type        = string
  default     = "prefer-cached"
}

variable "container_stop_timeout" {
  description = "ECS_CONTAINER_STOP_TIMEOUT of the agent (grace period before SIGKILL)."
  type        = string
  default     = "30s"
}

variable "task_cleanup_wait" {
  description = "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION of the agent."
  type        = string
  default     = "1h"
}

variable "extra_ecs_config" {
  description = "Additional ecs.config settings (KEY = value). Cannot override the security settings."
  type        = map(string)
  default     = {}

  validation {
    condition = length(setintersection(keys(var.extra_ecs_config), [
      "ECS_CLUSTER", "ECS_AWSVPC_BLOCK_IMDS", "ECS_WARM_POOLS_CHECK", "ECS_DISABLE_PRIVILEGED",
      "ECS_IMAGE_PULL_BEHAVIOR", "ECS_CONTAINER_STOP_TIMEOUT", "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
      "ECS_TASK_PIDS_LIMIT",
    ])) == 0
    error_message = "extra_ecs_config must not set keys the module manages."
  }
}

variable "enable_ssm_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore to the instance role (shell access for operators via Session Manager)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
