output "ecs_settings" {
  description = "ECS account defaults, name => value as published to the environments."
  value       = { for k, p in aws_ssm_parameter.ecs_setting : k => p.insecure_value }
}

output "ecs_setting_parameters" {
  description = "SSM parameter of each ECS account default (the environments read these)."
  value       = { for k, p in aws_ssm_parameter.ecs_setting : k => p.name }
}

output "ecr_repository_urls" {
  description = "Repository URL of each image (deploy <url>@sha256:<digest>)."
  value       = module.ecr.repository_urls
}
