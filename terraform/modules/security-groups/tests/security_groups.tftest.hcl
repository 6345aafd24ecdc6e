# The rule table (output.rules) is the complete rule set: the module's only rule resource
# iterates over it. The first run proves that wiring; the others assert each group's rules.

mock_provider "aws" {}

variables {
  name                    = "t"
  vpc_id                  = "vpc-0123456789abcdef0"
  vpc_cidr_block          = "10.0.0.0/16"
  alb_ingress_cidr_blocks = ["10.9.0.0/16"]
  s3_prefix_list_id       = "pl-s3"
  egress_prefix_list_id   = "pl-egress"
}

run "every_rule_resource_follows_the_table" {
  command = apply

  assert {
    condition     = toset(keys(aws_security_group_rule.this)) == toset(keys(output.rules))
    error_message = "One rule resource per table entry."
  }

  assert {
    condition = alltrue([for k, r in aws_security_group_rule.this :
      r.security_group_id == aws_security_group.this[output.rules[k].group].id &&
      r.type == output.rules[k].type && r.protocol == "tcp" &&
      r.from_port == output.rules[k].port && r.to_port == output.rules[k].port &&
      r.source_security_group_id == try(aws_security_group.this[output.rules[k].source_group].id, r.source_security_group_id)
    ])
    error_message = "Each rule resource must match its table entry (group, direction, port, source group)."
  }
}

run "workspace_ingress_only_from_control_plane_on_9000" {
  command = plan

  assert {
    condition = jsonencode([for k, r in output.rules : [r.port, r.source_group, r.source_security_group_id, r.cidr_blocks, r.prefix_list_ids]
      if r.group == "workspace" && r.type == "ingress"
    ]) == jsonencode([[9000, "control_plane", null, null, null]])
    error_message = "Workspace ingress must be exactly tcp/9000 from the control-plane SG."
  }
}

run "workspace_egress_only_443_to_endpoints_and_prefix_list" {
  command = plan

  assert {
    condition = toset([for k, r in output.rules : jsonencode([r.port, r.source_group, r.source_security_group_id, r.cidr_blocks, r.prefix_list_ids])
      if r.group == "workspace" && r.type == "egress"
      ]) == toset([
      jsonencode([443, "endpoints", null, null, null]),
      jsonencode([443, null, null, null, ["pl-egress"]]),
    ])
    error_message = "Workspace egress must be exactly tcp/443 to the endpoint SG and tcp/443 to the egress prefix list."
  }
}

run "control_plane_ingress_only_from_its_callers" {
  command = plan

  assert {
    condition = jsonencode([for k, r in output.rules : [r.port, r.source_group, r.cidr_blocks]
      if r.group == "control_plane" && r.type == "ingress"
    ]) == jsonencode([[8080, "alb", null]])
    error_message = "The control plane must accept only its port from the ALB SG."
  }

  assert {
    condition = jsonencode([for k, r in output.rules : [r.port, r.cidr_blocks]
      if r.group == "alb" && r.type == "ingress"
    ]) == jsonencode([[443, ["10.9.0.0/16"]]])
    error_message = "The ALB accepts only 443 from the configured callers."
  }
}

run "redis_only_from_control_plane_and_lambdas" {
  command = plan

  assert {
    condition = toset([for k, r in output.rules : jsonencode([r.type, r.port, r.source_group, r.cidr_blocks])
      if r.group == "redis"
    ]) == toset([jsonencode(["ingress", 6379, "control_plane", null]), jsonencode(["ingress", 6379, "lambda", null])])
    error_message = "Redis must accept 6379 from the control plane and the Lambdas only, and have no other rule."
  }
}

run "endpoints_443_from_inside_the_vpc" {
  command = plan

  assert {
    condition = jsonencode([for k, r in output.rules : [r.type, r.port, r.cidr_blocks] if r.group == "endpoints"
    ]) == jsonencode([["ingress", 443, ["10.0.0.0/16"]]])
    error_message = "The endpoint SG must accept only 443 from the VPC CIDR."
  }
}

run "only_the_hosts_reach_the_internet" {
  command = plan

  assert {
    condition     = jsonencode([for k, r in output.rules : k if contains(r.cidr_blocks == null ? [] : r.cidr_blocks, "0.0.0.0/0")]) == jsonencode(["instance_out_https"])
    error_message = "Only the container instances may have a rule to 0.0.0.0/0."
  }

  assert {
    condition     = length([for k, r in output.rules : k if r.group == "instance" && r.type == "ingress"]) == 0
    error_message = "Container instances accept no inbound traffic."
  }
}
