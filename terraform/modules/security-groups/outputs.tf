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
  description = "Security group of the interface VPC endpoints of the AWS APIs (not reachable from workspaces)."
  value       = aws_security_group.this["endpoints"].id
}

output "bedrock_endpoint_security_group_id" {
  description = "Security group of the bedrock-runtime interface endpoint (443 from the workspace tasks only)."
  value       = aws_security_group.this["bedrock"].id
}

output "rule_weights" {
  description = "Rule count of every group per direction, prefix lists counted at their weight: group => {ingress, egress}."
  value       = local.rule_weights
}

output "rules" {
  description = "Every rule of every group: key => {group, type, port, description, source_group, source_security_group_id, cidr_blocks, prefix_lists (names), prefix_list_ids}."
  value       = local.rules
}

output "group_ids" {
  description = "ID of every group, by name."
  value       = { for k, g in aws_security_group.this : k => g.id }
}

output "reachability" {
  description = "Who reaches what: source group => sorted [\"group:<name>:<port>\" | \"prefix-list:<name>:<port>\" | \"cidr:<cidr>:<port>\" | \"outside-group:<id>:<port>\"], both sides' rules resolved."
  value       = local.reachability
}
