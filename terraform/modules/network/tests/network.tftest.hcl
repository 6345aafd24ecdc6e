mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

override_data {
  target = data.aws_region.current
  values = {
    name = "us-east-1"
  }
}

variables {
  name                       = "t"
  endpoint_security_group_id = "sg-endpoints"
  azs                        = ["us-east-1a", "us-east-1b"]
}

run "vpc_two_azs_nat_per_az_flow_logs" {
  command = plan

  assert {
    condition     = aws_vpc.this.enable_dns_hostnames && aws_vpc.this.enable_dns_support
    error_message = "DNS hostnames and support must be on (needed by private endpoints)."
  }

  assert {
    condition     = [for s in aws_subnet.private : s.availability_zone] == ["us-east-1a", "us-east-1b"] && [for s in aws_subnet.public : s.availability_zone] == ["us-east-1a", "us-east-1b"]
    error_message = "One public and one private subnet in each of two AZs."
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2 && length(aws_route.private_nat) == 2
    error_message = "One NAT gateway per AZ, one private route table per AZ."
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : s.map_public_ip_on_launch == false])
    error_message = "No public IPs on launch."
  }

  assert {
    condition     = aws_flow_log.this.traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs.retention_in_days == 365
    error_message = "VPC flow logs of all traffic, kept a year."
  }
}

run "endpoints" {
  command = plan

  assert {
    condition = toset(keys(aws_vpc_endpoint.interface)) == toset([
      "ecr.api", "ecr.dkr", "logs", "secretsmanager", "ssm", "ecs", "ecs-agent", "ecs-telemetry", "sts", "bedrock-runtime",
    ])
    error_message = "Interface endpoints for ECR, Logs, Secrets Manager, SSM, ECS, STS and Bedrock runtime."
  }

  assert {
    condition = alltrue([for k, e in aws_vpc_endpoint.interface :
      e.private_dns_enabled && e.security_group_ids == toset(["sg-endpoints"]) && e.service_name == "com.amazonaws.us-east-1.${k}"
    ])
    error_message = "Interface endpoints use private DNS and the endpoint SG."
  }

  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3.service_name == "com.amazonaws.us-east-1.s3"
    error_message = "S3 is reached through a gateway endpoint."
  }
}

run "two_distinct_azs_required" {
  command = plan

  variables {
    azs = ["us-east-1a", "us-east-1a"]
  }

  expect_failures = [var.azs]
}
