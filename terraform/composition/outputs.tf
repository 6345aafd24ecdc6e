# Outputs of an environment (identical in every env directory).

output "vpc_id" {
  description = "VPC of the environment."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets (workspace tasks run here)."
  value       = module.network.private_subnet_ids
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.ecs_cluster.cluster_name
}

output "capacity_provider_name" {
  description = "EC2 capacity provider of the workspace hosts."
  value       = module.ecs_cluster.capacity_provider_name
}

output "autoscaling_group_name" {
  description = "Auto Scaling group of the workspace hosts."
  value       = module.ecs_cluster.autoscaling_group_name
}

output "launch_template_id" {
  description = "Launch template of the workspace hosts."
  value       = module.ecs_cluster.launch_template_id
}

output "workspace_task_definition_arn" {
  description = "Workspace task definition."
  value       = module.workspace_task.task_definition_arn
}

output "workspace_execution_role_arn" {
  description = "Execution role of the workspace tasks."
  value       = module.workspace_task.execution_role_arn
}

output "workspace_security_group_id" {
  description = "Security group of the workspace tasks."
  value       = module.security_groups.workspace_security_group_id
}

output "control_plane_security_group_id" {
  description = "Security group of the control plane."
  value       = module.security_groups.control_plane_security_group_id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface endpoints."
  value       = module.security_groups.endpoints_security_group_id
}

output "egress_prefix_list_id" {
  description = "Managed prefix list of allowed workspace destinations."
  value       = module.dns_firewall.egress_prefix_list_id
}

output "control_plane_url" {
  description = "HTTPS URL of the control plane's internal ALB."
  value       = "https://${module.control_plane.alb_dns_name}"
}

output "control_plane_service_name" {
  description = "ECS service of the control plane."
  value       = module.control_plane.service_name
}

output "bucket_name" {
  description = "Workspace bucket."
  value       = module.storage.bucket_name
}

output "redis_endpoint" {
  description = "Redis primary endpoint (TLS)."
  value       = module.redis.primary_endpoint
}

output "secrets_to_fill" {
  description = "Secrets whose values are set out of band after the first apply (docs/deploy.md)."
  value = {
    bedrock_signer_credentials = module.workspace_task.bedrock_credentials_secret_arn
    control_plane_api_tokens   = module.control_plane.api_tokens_secret_arn
  }
}

output "bedrock_signer_user_name" {
  description = "IAM user whose access key goes into the bedrock_signer_credentials secret."
  value       = module.workspace_task.bedrock_signer_user_name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.monitoring.alarm_topic_arn
}

output "lambda_function_names" {
  description = "Scheduled Lambdas."
  value = {
    gc          = module.lambda_gc.function_name
    warm_pool   = module.lambda_warm_pool.function_name
    egress_sync = module.lambda_egress_sync.function_name
  }
}

output "reachability" {
  description = "Who reaches what (security groups resolved through referenced groups and prefix lists): source group => [destination:port]."
  value       = module.security_groups.reachability
}

output "security_group_rule_weights" {
  description = "Rules of every security group per direction, prefix lists at their weight (quota: rules_per_security_group)."
  value       = module.security_groups.rule_weights
}

output "interface_endpoint_ids" {
  description = "Interface endpoints, keyed by service suffix."
  value       = module.network.interface_endpoint_ids
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the environment."
  value       = module.monitoring.dashboard_name
}

output "awsvpc_trunking" {
  description = "The account's awsvpcTrunking setting as published by terraform/account."
  value       = data.aws_ssm_parameter.awsvpc_trunking.insecure_value
}

output "bedrock_endpoint_security_group_id" {
  description = "Security group of the bedrock-runtime interface endpoint (the only endpoint workspaces reach)."
  value       = module.security_groups.bedrock_endpoint_security_group_id
}
