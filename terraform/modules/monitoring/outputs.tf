output "kms_key_arn" {
  description = "ARN of the environment's KMS key (null when create_kms_key is false)."
  value       = local.kms_key_arn
}

output "log_group_names" {
  description = "Log groups of the ECS workloads: workspace_agent, workspace_proxy, control_plane, control_plane_metrics (EMF)."
  value       = { for k, v in aws_cloudwatch_log_group.this : k => v.name }
}

output "alarm_topic_arn" {
  description = "SNS topic receiving every alarm."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of the alarms."
  value = concat(
    [aws_cloudwatch_metric_alarm.run_task_failures.alarm_name, aws_cloudwatch_metric_alarm.capacity_reservation.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.ops : a.alarm_name],
  )
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the environment."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "control_plane_metrics_namespace" {
  description = "CloudWatch namespace of the control plane's metrics (RunTask failures from its logs, its Prometheus metrics as EMF)."
  value       = local.metric_namespace
}
