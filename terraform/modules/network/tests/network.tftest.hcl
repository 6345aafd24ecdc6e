# The mock provider does not render policy documents: the tests read the statements of
# each aws_iam_policy_document as configured.
mock_provider "aws" {
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:111111111111:log-group:t"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/t"
    }
  }

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

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "111111111111"
  }
}

override_data {
  target = data.aws_partition.current
  values = {
    partition = "aws"
  }
}

override_data {
  target = data.aws_availability_zones.available
  values = {
    names = ["us-east-1c", "us-east-1a", "us-east-1b"]
  }
}

variables {
  name                               = "t"
  endpoint_security_group_id         = "sg-endpoints"
  bedrock_endpoint_security_group_id = "sg-bedrock"
  s3_bucket_arns                     = ["arn:aws:s3:::t-workspaces"]
  azs                                = ["us-east-1a", "us-east-1b"]
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
      e.private_dns_enabled && e.service_name == "com.amazonaws.us-east-1.${k}"
    ])
    error_message = "Interface endpoints use private DNS."
  }

  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3.service_name == "com.amazonaws.us-east-1.s3"
    error_message = "S3 is reached through a gateway endpoint."
  }
}

# Workspaces reach the bedrock-runtime endpoint only: it must not share a security group
# with the endpoints of the AWS APIs (ECR, Secrets Manager, STS, ...).
run "bedrock_runtime_has_a_security_group_of_its_own" {
  command = plan

  assert {
    condition     = aws_vpc_endpoint.interface["bedrock-runtime"].security_group_ids == toset(["sg-bedrock"])
    error_message = "The bedrock-runtime endpoint must be in its own security group."
  }

  assert {
    condition = alltrue([for k, e in aws_vpc_endpoint.interface :
    e.security_group_ids == toset(["sg-endpoints"]) if k != "bedrock-runtime"])
    error_message = "Every other interface endpoint is in the endpoints security group (which workspaces cannot reach)."
  }
}

run "every_endpoint_is_limited_to_this_account" {
  command = plan

  assert {
    condition = alltrue([for k, d in data.aws_iam_policy_document.interface_endpoint :
      anytrue([for c in d.statement[0].condition : c.test == "StringEquals" && c.variable == "aws:PrincipalAccount" && c.values == tolist(["111111111111"])])
    ])
    error_message = "Every interface endpoint admits this account's principals only."
  }

  assert {
    condition = alltrue([for k, d in data.aws_iam_policy_document.interface_endpoint :
      anytrue([for c in d.statement[0].condition : c.variable == "aws:ResourceAccount" && c.values == tolist(["111111111111"])])
    if k != "bedrock-runtime"])
    error_message = "Every AWS API endpoint admits requests for this account's resources only."
  }

  assert {
    condition = (
      data.aws_iam_policy_document.interface_endpoint["bedrock-runtime"].statement[0].actions == toset(["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]) &&
      data.aws_iam_policy_document.interface_endpoint["ecr.dkr"].statement[0].actions == toset(["ecr:*"]) &&
      alltrue([for k, e in aws_vpc_endpoint.interface : e.policy != null])
    )
    error_message = "Each endpoint admits its own service's actions (bedrock-runtime: model invocation only), and every endpoint carries its policy."
  }

  assert {
    condition = (
      toset(flatten([for s in data.aws_iam_policy_document.s3_gateway.statement : tolist(s.resources)])) == toset([
        "arn:aws:s3:::t-workspaces", "arn:aws:s3:::t-workspaces/*", "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*",
      ]) &&
      alltrue([for s in data.aws_iam_policy_document.s3_gateway.statement :
      anytrue([for c in s.condition : c.variable == "aws:PrincipalAccount" && c.values == tolist(["111111111111"])])])
    )
    error_message = "The S3 gateway endpoint reaches only the estate's buckets and ECR's layer bucket, for this account's principals."
  }
}

run "resolver_query_logging" {
  command = apply

  assert {
    condition = (
      aws_route53_resolver_query_log_config.this[0].destination_arn == aws_cloudwatch_log_group.resolver_queries[0].arn &&
      aws_route53_resolver_query_log_config_association.this[0].resource_id == aws_vpc.this.id
    )
    error_message = "The VPC's DNS queries are logged to their log group."
  }
}

run "zones_from_the_region_when_not_named" {
  command = plan

  variables {
    azs = null
  }

  assert {
    condition     = [for s in aws_subnet.private : s.availability_zone] == ["us-east-1a", "us-east-1b"]
    error_message = "Without azs, the first two available zones (sorted) are used."
  }
}

run "two_distinct_azs_required" {
  command = plan

  variables {
    azs = ["us-east-1a", "us-east-1a"]
  }

  expect_failures = [var.azs]
}
