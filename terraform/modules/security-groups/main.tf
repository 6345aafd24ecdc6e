# Security groups of the estate. Every rule of every group is one entry of local.rules
# (a single aws_security_group_rule resource iterates over it), so the complete rule set
# of a group can be read, reviewed and tested in one place. No group carries a rule that
# is not in that table: Terraform removes the default allow-all egress of new groups.
# (aws_security_group_rule rather than aws_vpc_security_group_*_rule: the latter shows
# false drift for group-to-group rules against moto.)
#
# AWS counts rules per group and direction against the "rules per security group" quota
# (60 inbound and 60 outbound by default), and a rule that references a prefix list counts
# as that list's weight: max_entries for a customer-managed list, the published weight for
# an AWS-managed one (S3: 1). local.rule_weights sums that per group and direction; every
# group refuses to plan when one of them exceeds var.rules_per_security_group.

locals {
  groups = {
    alb           = "internal ALB in front of the control plane"
    control_plane = "control-plane tasks"
    workspace     = "workspace tasks (agent + proxy sidecar ENIs)"
    instance      = "ECS container instances (workspace hosts)"
    lambda        = "scheduled Lambdas (gc, warm-pool, egress-sync)"
    redis         = "ElastiCache Redis"
    endpoints     = "interface VPC endpoints of the AWS APIs (ECR, Logs, Secrets Manager, SSM, ECS, STS)"
    bedrock       = "bedrock-runtime interface VPC endpoint (the only endpoint workspaces reach)"
  }

  # Every field is set in every rule (null where unused) so that the table has one type.
  rule_defaults = {
    source_group             = null # a group of this module
    source_security_group_id = null # a group from outside
    cidr_blocks              = null
    prefix_lists             = null # names of local.prefix_lists
  }

  # The prefix lists rules may reference, by name: their IDs, and their weight against the
  # quota (max_entries for the customer-managed egress list; 1 for the AWS-managed S3
  # list, per the VPC documentation's "AWS-managed prefix list weight"). Names, not IDs,
  # key the weights so that the quota check is known at plan time, before the lists exist.
  prefix_lists = {
    egress = { id = var.egress_prefix_list_id, weight = var.egress_prefix_list_max_entries }
    s3     = { id = var.s3_prefix_list_id, weight = 1 }
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
      control_plane_out_s3        = { group = "control_plane", type = "egress", port = 443, description = "To S3 through the gateway endpoint", prefix_lists = ["s3"] }

      # Workspace: ingress only from the control plane on the agent port; egress only 443,
      # to the bedrock-runtime endpoint (the sidecar's signed Bedrock calls) and to the
      # managed prefix list of allowed external destinations. On the EC2 launch type the
      # task ENI needs no other endpoint: the host's agent pulls images, fetches secrets and
      # ships logs. DNS queries to the VPC resolver are not subject to security groups: the
      # Route 53 Resolver DNS Firewall limits them.
      workspace_in_control_plane = { group = "workspace", type = "ingress", port = var.workspace_agent_port, description = "Agent API from the control plane only", source_group = "control_plane" }
      workspace_out_bedrock      = { group = "workspace", type = "egress", port = 443, description = "HTTPS to the bedrock-runtime endpoint only", source_group = "bedrock" }
      workspace_out_allowed      = { group = "workspace", type = "egress", port = 443, description = "HTTPS to the allowed external destinations (managed prefix list)", prefix_lists = ["egress"] }

      # Container instances: no ingress; the ECS agent and Docker pull images and ship logs.
      instance_out_https = { group = "instance", type = "egress", port = 443, description = "HTTPS for the ECS agent and image pulls (endpoints, S3, NAT)", cidr_blocks = ["0.0.0.0/0"] }

      lambda_out_redis     = { group = "lambda", type = "egress", port = var.redis_port, description = "To Redis", source_group = "redis" }
      lambda_out_endpoints = { group = "lambda", type = "egress", port = 443, description = "To the interface endpoints", source_group = "endpoints" }
      lambda_out_s3        = { group = "lambda", type = "egress", port = 443, description = "To S3 through the gateway endpoint", prefix_lists = ["s3"] }

      redis_in_control_plane = { group = "redis", type = "ingress", port = var.redis_port, description = "Redis from the control plane", source_group = "control_plane" }
      redis_in_lambda        = { group = "redis", type = "ingress", port = var.redis_port, description = "Redis from the scheduled Lambdas", source_group = "lambda" }

      # The endpoints admit the groups that use them, never the VPC CIDR (which holds the
      # workspace ENIs).
      endpoints_in_control_plane = { group = "endpoints", type = "ingress", port = 443, description = "HTTPS from the control plane", source_group = "control_plane" }
      endpoints_in_lambda        = { group = "endpoints", type = "ingress", port = 443, description = "HTTPS from the scheduled Lambdas", source_group = "lambda" }
      endpoints_in_instance      = { group = "endpoints", type = "ingress", port = 443, description = "HTTPS from the ECS agent and Docker on the hosts", source_group = "instance" }
      bedrock_in_workspace       = { group = "bedrock", type = "ingress", port = 443, description = "HTTPS from the workspace tasks (sidecar)", source_group = "workspace" }
    },
  )

  rules = { for k, r in local.rule_specs : k => merge(local.rule_defaults, r, {
    prefix_list_ids = try([for n in r.prefix_lists : local.prefix_lists[n].id], null)
  }) }

  rule_weight = { for k, r in local.rules : k => (
    length(coalesce(r.cidr_blocks, [])) +
    sum(concat([0], [for n in coalesce(r.prefix_lists, []) : local.prefix_lists[n].weight])) +
    (r.source_group != null || r.source_security_group_id != null ? 1 : 0)
  ) }

  # Who reaches what. Group A reaches group B on port p when an egress rule of A admits B
  # (by group, or 0.0.0.0/0) and an ingress rule of B admits A (by group, or 0.0.0.0/0);
  # CIDRs, prefix lists and outside groups are destinations of their own. The composition's
  # tests map groups to the endpoints they hold.
  ingress_of = { for g in keys(local.groups) : g => [for k, r in local.rules : r if r.group == g && r.type == "ingress"] }

  reachability = { for src in keys(local.groups) : src => sort(distinct(flatten([
    for k, e in local.rules : concat(
      [for dst in keys(local.groups) : "group:${dst}:${e.port}"
        if dst != src && (e.source_group == dst || contains(coalesce(e.cidr_blocks, []), "0.0.0.0/0")) &&
        anytrue([for i in local.ingress_of[dst] : i.port == e.port && (i.source_group == src || contains(coalesce(i.cidr_blocks, []), "0.0.0.0/0"))])
      ],
      [for c in coalesce(e.cidr_blocks, []) : "cidr:${c}:${e.port}"],
      [for n in coalesce(e.prefix_lists, []) : "prefix-list:${n}:${e.port}"],
      e.source_security_group_id == null ? [] : ["outside-group:${e.source_security_group_id}:${e.port}"],
    ) if e.group == src && e.type == "egress"
  ]))) }

  rule_weights = { for g in keys(local.groups) : g => {
    for direction in ["ingress", "egress"] : direction => sum(concat([0], [for k, r in local.rules : local.rule_weight[k] if r.group == g && r.type == direction]))
  } }
}

resource "aws_security_group" "this" {
  for_each = local.groups

  name_prefix = "${var.name}-${replace(each.key, "_", "-")}-"
  description = "${var.name}: ${each.value}"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = max(values(local.rule_weights[each.key])...) <= var.rules_per_security_group
      error_message = "Security group ${each.key} would hold ${jsonencode(local.rule_weights[each.key])} rules (prefix lists counted at their weight) against a quota of ${var.rules_per_security_group} per direction: lower egress_prefix_list_max_entries or raise the quota first."
    }
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
