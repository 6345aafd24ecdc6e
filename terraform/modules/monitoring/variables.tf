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

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
