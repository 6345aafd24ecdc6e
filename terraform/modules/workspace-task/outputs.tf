output "task_definition_arn" {
  description = "ARN (with revision) of the workspace task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_family" {
  description = "Family of the workspace task definition (RunTask with the family runs the latest ACTIVE revision)."
  value       = aws_ecs_task_definition.this.family
}

output "execution_role_arn" {
  description = "ARN of the execution role (the only role the control plane may pass)."
  value       = aws_iam_role.execution.arn
}

output "bedrock_credentials_secret_arn" {
  description = "ARN of the secret that must hold the signer's access key as JSON {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY}."
  value       = aws_secretsmanager_secret.bedrock_credentials.arn
}

output "bedrock_signer_user_name" {
  description = "IAM user whose access key signs Bedrock requests in the sidecar."
  value       = aws_iam_user.bedrock_signer.name
}

output "container_definitions" {
  description = "The container definitions as a Terraform value (for tests and reviews)."
  value       = local.container_definitions
}
