# The rule table (output.rules) is the complete rule set: the module's only rule resource
# iterates over it. The first run proves that wiring; the others assert each group's rules.

mock_provider "aws" {}

variables {
  name                    = "t"
  vpc_id                  = "vpc-0123456789abcdef0"
  alb_ingress_cidr_blocks = ["10.9.0.0/16"]
  s3_prefix_list_id       = "pl-s3"
  egress_prefix_list_id   = "pl-egress"

  egress_prefix_list_max_entries = 50
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

run "workspace_egress_only_443_to_bedrock_endpoint_and_prefix_list" {
  command = plan

  assert {
    condition = toset([for k, r in output.rules : jsonencode([r.port, r.source_group, r.source_security_group_id, r.cidr_blocks, r.prefix_list_ids])
      if r.group == "workspace" && r.type == "egress"
      ]) == toset([
      jsonencode([443, "bedrock", null, null, null]),
      jsonencode([443, null, null, null, ["pl-egress"]]),
    ])
    error_message = "Workspace egress must be exactly tcp/443 to the bedrock-runtime endpoint SG and tcp/443 to the egress prefix list."
  }

  assert {
    condition     = length([for k, r in output.rules : k if r.group == "workspace" && r.source_group == "endpoints"]) == 0
    error_message = "Workspaces must not reach the AWS API endpoints (ECR, Secrets Manager, STS...)."
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

run "endpoints_admit_their_users_only" {
  command = plan

  assert {
    condition = toset([for k, r in output.rules : jsonencode([r.type, r.port, r.source_group, r.cidr_blocks]) if r.group == "endpoints"
      ]) == toset([
      jsonencode(["ingress", 443, "control_plane", null]),
      jsonencode(["ingress", 443, "lambda", null]),
      jsonencode(["ingress", 443, "instance", null]),
    ])
    error_message = "The AWS API endpoints accept 443 from the control plane, the Lambdas and the hosts only (no VPC CIDR: it holds the workspace ENIs)."
  }

  assert {
    condition = jsonencode([for k, r in output.rules : [r.type, r.port, r.source_group, r.cidr_blocks] if r.group == "bedrock"
    ]) == jsonencode([["ingress", 443, "workspace", null]])
    error_message = "The bedrock-runtime endpoint accepts 443 from the workspace tasks only."
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

# The quota: AWS counts a referenced prefix list at its weight (max_entries for the
# customer-managed egress list). Inbound and outbound are counted separately.
run "every_group_fits_the_rule_quota" {
  command = plan

  assert {
    condition     = output.rule_weights["workspace"] == { ingress = 1, egress = 51 }
    error_message = "Workspace: 1 inbound rule; outbound the bedrock SG (1) plus the egress prefix list at its max_entries (50)."
  }

  assert {
    condition     = alltrue([for g, w in output.rule_weights : w.ingress <= 60 && w.egress <= 60])
    error_message = "No group may exceed the default quota of 60 rules per direction."
  }
}

run "a_prefix_list_that_overflows_the_quota_is_refused" {
  command = plan

  variables {
    egress_prefix_list_max_entries = 60
  }

  expect_failures = [aws_security_group.this]
}

run "a_lower_quota_is_honoured" {
  command = plan

  variables {
    rules_per_security_group = 40
  }

  expect_failures = [aws_security_group.this]
}

# The intended matrix: a workspace reaches the bedrock-runtime endpoint's group and the
# egress prefix list, nothing else; only the hosts reach 0.0.0.0/0.
run "reachability_matrix" {
  command = plan

  assert {
    condition = jsonencode(output.reachability) == jsonencode({
      alb           = ["group:control_plane:8080"]
      control_plane = ["group:endpoints:443", "group:redis:6379", "group:workspace:9000", "prefix-list:s3:443"]
      workspace     = ["group:bedrock:443", "prefix-list:egress:443"]
      instance      = ["cidr:0.0.0.0/0:443", "group:endpoints:443"]
      lambda        = ["group:endpoints:443", "group:redis:6379", "prefix-list:s3:443"]
      redis         = []
      endpoints     = []
      bedrock       = []
    })
    error_message = "Reachability differs from the intended matrix: ${jsonencode(output.reachability)}"
  }
}
