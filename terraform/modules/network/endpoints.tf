# VPC endpoints: AWS APIs are reached without leaving the VPC. The S3 gateway endpoint
# serves ECR image layers and the workspace bucket; the interface endpoints carry ECR,
# CloudWatch Logs, Secrets Manager, SSM, ECS (agent, telemetry), STS and Bedrock runtime
# traffic. Private DNS makes the public service names resolve to the endpoint ENIs.

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoint_services)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [var.endpoint_security_group_id]
  private_dns_enabled = true

  tags = merge(var.tags, { Name = "${var.name}-${each.value}" })
}
