# Security groups of the estate. Every rule of every group is one entry of local.rules
# (a single aws_security_group_rule resource iterates over it), so the complete rule set
# of a group can be read, reviewed and tested in one place. No group carries a rule that
# is not in that table: Terraform removes the default allow-all egress of new groups.
# (aws_security_group_rule rather than aws_vpc_security_group_*_rule: the latter shows
# false drift for group-to-group rules against moto.)

locals {
  groups = {
    alb           = "internal ALB in front of the control plane"
    control_plane = "control-plane tasks"
    workspace     = "workspace tasks (agent + proxy sidecar ENIs)"
    instance      = "ECS container instances (workspace hosts)"
    lambda        = "scheduled Lambdas (gc, warm-pool, egress-sync)"
    redis         = "ElastiCache Redis"
    endpoints     = "interface VPC endpoints"
  }

  # Every field is set in every rule (null where unused) so that the table has one type.
  rule_defaults = {
    source_group             = null # a group of this module
    source_security_group_id = null # a group from outside
    cidr_blocks              = null
    prefix_list_ids          = null
  }

  rule_specs = merge(
    length(var.alb_ingress_cidr_blocks) == 0 ? {} : {
      alb_in_callers_cidr = { group = "alb", type = "ingress", port = 443, description = "HTTPS from the callers of the control plane (CIDR)", cidr_blocks = var.alb_ingress_cidr_blocks }
    },
    { for i, sg in var.alb_ingress_security_group_ids :
      "alb_in_callers_sg_${i}" => { group = "alb", type = "ingress", port = 443, description = "HTTPS from the callers of the control plane (security group)", source_security_group_id = sg }
    },
    {
      alb_out_control_plane = { group = "alb", type = "egress", port = var.control_plane_port, description = "To the control-plane tasks", source_group = "control_plane" }

      control_plane_in_alb        = { group = "control_plane", type = "ingress", port = var.control_plane_port, description = "API from the ALB only", source_group = "alb" }
      control_plane_out_workspace = { group = "control_plane", type = "egress", port = var.workspace_agent_port, description = "To the workspace agents", source_group = "workspace" }
      control_plane_out_redis     = { group = "control_plane", type = "egress", port = var.redis_port, description = "To Redis", source_group = "redis" }
      control_plane_out_endpoints = { group = "control_plane", type = "egress", port = 443, description = "To the interface endpoints (ECS, Secrets Manager, Logs, STS)", source_group = "endpoints" }
      control_plane_out_s3        = { group = "control_plane", type = "egress", port = 443, description = "To S3 through the gateway endpoint", prefix_list_ids = [var.s3_prefix_list_id] }

      # Workspace: ingress only from the control plane on the agent port; egress only 443,
      # to the interface endpoints (Bedrock runtime for the sidecar) and to the managed
      # prefix list of allowed external destinations. DNS queries to the VPC resolver are
      # not subject to security groups: the Route 53 Resolver DNS Firewall limits them.
      workspace_in_control_plane = { group = "workspace", type = "ingress", port = var.workspace_agent_port, description = "Agent API from the control plane only", source_group = "control_plane" }
      workspace_out_endpoints    = { group = "workspace", type = "egress", port = 443, description = "HTTPS to the interface endpoints (Bedrock runtime)", source_group = "endpoints" }
      workspace_out_allowed      = { group = "workspace", type = "egress", port = 443, description = "HTTPS to the allowed external destinations (managed prefix list)", prefix_list_ids = [var.egress_prefix_list_id] }

      # Container instances: no ingress; the ECS agent and Docker pull images and ship logs.
      instance_out_https = { group = "instance", type = "egress", port = 443, description = "HTTPS for the ECS agent and image pulls (endpoints, S3, NAT)", cidr_blocks = ["0.0.0.0/0"] }

      lambda_out_redis     = { group = "lambda", type = "egress", port = var.redis_port, description = "To Redis", source_group = "redis" }
      lambda_out_endpoints = { group = "lambda", type = "egress", port = 443, description = "To the interface endpoints", source_group = "endpoints" }
      lambda_out_s3        = { group = "lambda", type = "egress", port = 443, description = "To S3 through the gateway endpoint", prefix_list_ids = [var.s3_prefix_list_id] }

      redis_in_control_plane = { group = "redis", type = "ingress", port = var.redis_port, description = "Redis from the control plane", source_group = "control_plane" }
      redis_in_lambda        = { group = "redis", type = "ingress", port = var.redis_port, description = "Redis from the scheduled Lambdas", source_group = "lambda" }

      endpoints_in_vpc = { group = "endpoints", type = "ingress", port = 443, description = "HTTPS from inside the VPC", cidr_blocks = [var.vpc_cidr_block] }
    },
  )

  rules = { for k, r in local.rule_specs : k => merge(local.rule_defaults, r) }
}

resource "aws_security_group" "this" {
  for_each = local.groups

  name_prefix = "${var.name}-${replace(each.key, "_", "-")}-"
  description = "${var.name}: ${each.value}"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group_rule" "this" {
  for_each = local.rules

  security_group_id = aws_security_group.this[each.value.group].id
  type              = each.value.type
  description       = each.value.description
  protocol          = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_blocks       = each.value.cidr_blocks
  prefix_list_ids   = each.value.prefix_list_ids
  source_security_group_id = (
    each.value.source_group != null ? aws_security_group.this[each.value.source_group].id : each.value.source_security_group_id
  )
}
