output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "task_role_arn" {
  description = "ARN of the control plane's task role."
  value       = aws_iam_role.task.arn
}

output "task_role_policy_json" {
  description = "The task role's policy document (for reviews and tests)."
  value       = data.aws_iam_policy_document.task.json
}

output "execution_role_arn" {
  description = "ARN of the control plane's execution role."
  value       = aws_iam_role.execution.arn
}

output "alb_dns_name" {
  description = "DNS name of the internal ALB (point the backend's DNS record here)."
  value       = aws_lb.this.dns_name
}

output "alb_arn" {
  description = "ARN of the internal ALB."
  value       = aws_lb.this.arn
}

output "target_group_arn" {
  description = "ARN of the target group."
  value       = aws_lb_target_group.this.arn
}

output "api_tokens_secret_arn" {
  description = "ARN of the secret that must hold the API's bearer tokens."
  value       = aws_secretsmanager_secret.api_tokens.arn
}

output "alb_arn_suffix" {
  description = "ARN suffix of the ALB (CloudWatch dimension LoadBalancer)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the target group (CloudWatch dimension TargetGroup)."
  value       = aws_lb_target_group.this.arn_suffix
}
