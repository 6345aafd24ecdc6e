output "alb_security_group_id" {
  description = "Security group of the internal control-plane ALB."
  value       = aws_security_group.this["alb"].id
}

output "control_plane_security_group_id" {
  description = "Security group of the control-plane tasks."
  value       = aws_security_group.this["control_plane"].id
}

output "workspace_security_group_id" {
  description = "Security group of the workspace tasks (pass it to RunTask)."
  value       = aws_security_group.this["workspace"].id
}

output "instance_security_group_id" {
  description = "Security group of the ECS container instances."
  value       = aws_security_group.this["instance"].id
}

output "lambda_security_group_id" {
  description = "Security group of the scheduled Lambdas."
  value       = aws_security_group.this["lambda"].id
}

output "redis_security_group_id" {
  description = "Security group of the Redis replication group."
  value       = aws_security_group.this["redis"].id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.this["endpoints"].id
}

output "rules" {
  description = "Every rule of every group: key => {group, type, port, description, source_group, source_security_group_id, cidr_blocks, prefix_list_ids}."
  value       = local.rules
}
