output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "capacity_provider_name" {
  description = "Name of the EC2 capacity provider (use it in RunTask's capacityProviderStrategy)."
  value       = aws_ecs_capacity_provider.this.name
}

output "autoscaling_group_name" {
  description = "Name of the container instances' Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "autoscaling_group_arn" {
  description = "ARN of the container instances' Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the container instances' launch template."
  value       = aws_launch_template.this.id
}

output "instance_role_arn" {
  description = "ARN of the container instances' IAM role."
  value       = aws_iam_role.instance.arn
}

output "ami_id" {
  description = "AMI the container instances boot from."
  value       = local.ami_id
}

output "user_data" {
  description = "Rendered user data (writes /etc/ecs/ecs.config)."
  value       = local.user_data
}
