output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.function.arn
}

output "scheduler_role_arn" {
  description = "ARN of the role EventBridge Scheduler uses to invoke the function."
  value       = aws_iam_role.scheduler.arn
}

output "log_group_name" {
  description = "Log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "schedule_arn" {
  description = "ARN of the schedule."
  value       = aws_scheduler_schedule.this.arn
}
