output "repository_urls" {
  description = "Repository URL of each repository (push <url>:<tag>, deploy <url>@<digest>)."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "ARN of each repository."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}
