output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "The two availability zones in use."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (NAT gateways only; nothing else is placed there)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (ECS hosts, tasks, ALB, Redis, Lambdas, endpoints)."
  value       = aws_subnet.private[*].id
}

output "private_route_table_ids" {
  description = "IDs of the private route tables (one per AZ)."
  value       = aws_route_table.private[*].id
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways (one per AZ)."
  value       = aws_nat_gateway.this[*].id
}

output "s3_endpoint_prefix_list_id" {
  description = "Prefix list ID of the S3 gateway endpoint (for security group egress to S3)."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint."
  value       = aws_vpc_endpoint.s3.id
}

output "interface_endpoint_ids" {
  description = "IDs of the interface endpoints, keyed by service suffix."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}

output "flow_log_group_name" {
  description = "CloudWatch log group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "resolver_query_log_group_name" {
  description = "CloudWatch log group receiving the VPC's DNS queries (null when query logging is off)."
  value       = one(aws_cloudwatch_log_group.resolver_queries[*].name)
}

output "endpoint_policies" {
  description = "Policy of every endpoint, keyed by service suffix (s3 for the gateway endpoint)."
  value = merge(
    { for k, d in data.aws_iam_policy_document.interface_endpoint : k => d.json },
    { s3 = data.aws_iam_policy_document.s3_gateway.json },
  )
}

output "interface_endpoint_security_group_ids" {
  description = "Security groups of each interface endpoint, keyed by service suffix."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.security_group_ids }
}
