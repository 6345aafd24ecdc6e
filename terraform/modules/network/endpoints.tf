# VPC endpoints: AWS APIs are reached without leaving the VPC. The S3 gateway endpoint
# serves ECR image layers and the workspace bucket; the interface endpoints carry ECR,
# CloudWatch Logs, Secrets Manager, SSM, ECS (agent, telemetry), STS and Bedrock runtime
# traffic. Private DNS makes the public service names resolve to the endpoint ENIs.
#
# Every endpoint has a policy: requests must come from this account's principals and, where
# the request names a resource, be for this account's resources (IfExists: some actions,
# such as ecr:GetAuthorizationToken or sts:GetCallerIdentity, name none). bedrock-runtime
# admits only the two invocation actions (its models are AWS-owned: the signer's IAM policy
# names them), and the S3 gateway only the estate's buckets and ECR's layer bucket.
# The bedrock-runtime endpoint sits in a security group of its own: it is the only
# endpoint the workspace tasks reach.

locals {
  account_conditions = [
    { test = "StringEquals", variable = "aws:PrincipalAccount", values = [local.account_id] },
    { test = "StringEqualsIfExists", variable = "aws:ResourceAccount", values = [local.account_id] },
  ]

  # The IAM service prefix of each endpoint's actions: an endpoint carries its own service
  # only. bedrock-runtime: the two invocation actions.
  endpoint_actions = {
    "ecr.api"         = ["ecr:*"]
    "ecr.dkr"         = ["ecr:*"]
    "logs"            = ["logs:*"]
    "secretsmanager"  = ["secretsmanager:*"]
    "ssm"             = ["ssm:*"]
    "ecs"             = ["ecs:*"]
    "ecs-agent"       = ["ecs:*"]
    "ecs-telemetry"   = ["ecs:*"]
    "sts"             = ["sts:*"]
    "bedrock-runtime" = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
  }

  # ECR keeps image layers in an AWS-owned bucket of the region.
  ecr_layer_bucket_arn = "arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket"
}

# An endpoint policy is a resource policy on the endpoint: "Principal": "*" narrowed by the
# account conditions is its normal form, and "<service>:*" means "this service's API, for
# this account only". The IAM-policy checks below do not model endpoint policies.
data "aws_iam_policy_document" "interface_endpoint" {
  #checkov:skip=CKV_AWS_283:endpoint policy: any principal of this account (aws:PrincipalAccount condition)
  #checkov:skip=CKV_AWS_107:endpoint policy: the service's own API for this account; IAM grants the actions
  #checkov:skip=CKV_AWS_108:endpoint policy: the service's own API for this account; IAM grants the actions
  #checkov:skip=CKV_AWS_110:endpoint policy: the service's own API for this account; IAM grants the actions
  for_each = toset(var.interface_endpoint_services)

  statement {
    sid       = "ThisAccountOnly"
    actions   = lookup(local.endpoint_actions, each.key, ["${split(".", each.key)[0]}:*"])
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    dynamic "condition" {
      for_each = each.key == "bedrock-runtime" ? slice(local.account_conditions, 0, 1) : local.account_conditions
      content {
        test     = condition.value.test
        variable = condition.value.variable
        values   = condition.value.values
      }
    }
  }
}

data "aws_iam_policy_document" "s3_gateway" {
  #checkov:skip=CKV_AWS_283:endpoint policy: any principal of this account (aws:PrincipalAccount condition)
  dynamic "statement" {
    for_each = {
      EstateBucketsOnly = { actions = ["s3:*"], resources = flatten([for b in var.s3_bucket_arns : [b, "${b}/*"]]) }
      EcrImageLayers    = { actions = ["s3:GetObject"], resources = ["${local.ecr_layer_bucket_arn}/*"] }
    }
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = statement.value.resources

      principals {
        type        = "AWS"
        identifiers = ["*"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  policy            = data.aws_iam_policy_document.s3_gateway.json

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoint_services)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [each.value == "bedrock-runtime" ? var.bedrock_endpoint_security_group_id : var.endpoint_security_group_id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.interface_endpoint[each.value].json

  tags = merge(var.tags, { Name = "${var.name}-${each.value}" })
}
