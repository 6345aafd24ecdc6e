output "primary_endpoint" {
  description = "Primary endpoint address (TLS, port 6379); null when the replication group is not created."
  value       = one(aws_elasticache_replication_group.this[*].primary_endpoint_address)
}

output "reader_endpoint" {
  description = "Reader endpoint address."
  value       = one(aws_elasticache_replication_group.this[*].reader_endpoint_address)
}

output "port" {
  description = "Redis port."
  value       = 6379
}

output "auth_secret_arn" {
  description = "ARN of the secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "replication_group_id" {
  description = "ID of the replication group."
  value       = one(aws_elasticache_replication_group.this[*].id)
}
