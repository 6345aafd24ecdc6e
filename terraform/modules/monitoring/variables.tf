variable "name" {
  description = "Name prefix of the log groups, topic, key and alarms."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the ECS log groups in days."
  type        = number
  default     = 365
}

variable "create_kms_key" {
  description = "Create the environment's customer-managed KMS key (logs, alarm topic, secrets, bucket, Redis)."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the KMS key."
  type        = number
  default     = 30
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []
}

variable "cluster_name" {
  description = "ECS cluster of the workspaces."
  type        = string
}

variable "capacity_provider_name" {
  description = "EC2 capacity provider of the workspaces."
  type        = string
}

variable "capacity_reservation_threshold" {
  description = "Alarm when CapacityProviderReservation stays above this percentage (over 100: tasks are waiting for instances)."
  type        = number
  default     = 100
}

variable "lambda_function_names" {
  description = "Scheduled Lambdas to alarm on (static key => function name)."
  type        = map(string)
  default     = {}
}

variable "run_task_failure_pattern" {
  description = "CloudWatch Logs filter pattern matching a failed RunTask in the control plane's JSON logs."
  type        = string
  default     = "{ $.fields.event = \"ecs_run_task_failed\" }"
}

variable "run_task_failure_threshold" {
  description = "Alarm when at least this many RunTask calls fail within 5 minutes."
  type        = number
  default     = 3
}

variable "autoscaling_group_name" {
  description = "Auto Scaling group of the workspace hosts (its warm pool is watched)."
  type        = string
}

variable "workspace_task_capacity" {
  description = "Workspace tasks the cluster holds at the ASG's maximum size (hosts x tasks per host)."
  type        = number
}

variable "task_capacity_alarm_percent" {
  description = "Alarm when running tasks exceed this percentage of workspace_task_capacity."
  type        = number
  default     = 80
}

variable "host_cpu_threshold" {
  description = "Alarm when the cluster's CPU utilisation stays above this percentage."
  type        = number
  default     = 80
}

variable "host_memory_threshold" {
  description = "Alarm when the cluster's memory utilisation stays above this percentage."
  type        = number
  default     = 85
}

variable "alb_alarms" {
  description = "Alarm on the control plane's ALB (alb_arn_suffix and target_group_arn_suffix)."
  type        = bool
  default     = true
}

variable "alb_arn_suffix" {
  description = "arn_suffix of the control plane's ALB."
  type        = string
  default     = null
}

variable "target_group_arn_suffix" {
  description = "arn_suffix of the control plane's target group."
  type        = string
  default     = null
}

variable "alb_5xx_threshold" {
  description = "Alarm when the ALB or the control plane answers at least this many 5xx within 5 minutes."
  type        = number
  default     = 5
}

variable "nat_gateway_ids" {
  description = "NAT gateways to alarm on (port allocation errors)."
  type        = list(string)
  default     = []
}

variable "redis_replication_group_id" {
  description = "ElastiCache replication group (alarms on its nodes when redis_num_cache_clusters > 0)."
  type        = string
  default     = null
}

variable "redis_num_cache_clusters" {
  description = "Nodes of the replication group (their ids are <group>-001, -002, ...); 0: no Redis alarms."
  type        = number
  default     = 0
}

variable "redis_memory_threshold" {
  description = "Alarm when a Redis node's memory use exceeds this percentage of maxmemory."
  type        = number
  default     = 80
}

variable "warm_pool_exhausted_threshold" {
  description = "Alarm when the control plane finds its warm pool empty at least this many times within 5 minutes."
  type        = number
  default     = 3
}

variable "resolver_query_log_group_name" {
  description = "Log group of the VPC's Resolver query logs (shown on the dashboard)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
