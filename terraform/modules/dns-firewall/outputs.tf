output "rule_group_id" {
  description = "ID of the DNS Firewall rule group (null when disabled)."
  value       = try(aws_route53_resolver_firewall_rule_group.this[0].id, null)
}

output "allow_rule_priority" {
  description = "Priority of the ALLOW rule (lower than the BLOCK rule's)."
  value       = local.allow_priority
}

output "block_rule_priority" {
  description = "Priority of the catch-all BLOCK rule."
  value       = local.block_priority
}

output "egress_prefix_list_id" {
  description = "ID of the managed prefix list of allowed external destinations."
  value       = aws_ec2_managed_prefix_list.egress.id
}

output "egress_prefix_list_max_entries" {
  description = "max_entries of the egress prefix list: its weight against the security group rule quota."
  value       = aws_ec2_managed_prefix_list.egress.max_entries
}

output "egress_prefix_list_arn" {
  description = "ARN of the managed prefix list (the egress-sync Lambda may modify it)."
  value       = aws_ec2_managed_prefix_list.egress.arn
}

output "allowed_domains" {
  description = "The allowed domains (the egress-sync Lambda resolves these)."
  value       = var.allowed_domains
}
