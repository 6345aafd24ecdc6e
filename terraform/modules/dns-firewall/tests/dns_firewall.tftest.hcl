mock_provider "aws" {}

variables {
  name            = "t"
  vpc_id          = "vpc-0123456789abcdef0"
  allowed_domains = ["bedrock-runtime.us-east-1.amazonaws.com", "pypi.org"]
}

run "allow_listed_then_block_everything_nxdomain" {
  command = plan

  assert {
    condition     = aws_route53_resolver_firewall_rule.allow[0].priority < aws_route53_resolver_firewall_rule.block_all[0].priority
    error_message = "The ALLOW rule must be evaluated before the BLOCK * rule."
  }

  assert {
    condition     = aws_route53_resolver_firewall_rule.allow[0].action == "ALLOW" && aws_route53_resolver_firewall_domain_list.allowed[0].domains == toset(["bedrock-runtime.us-east-1.amazonaws.com", "pypi.org"])
    error_message = "The ALLOW rule must allow exactly the listed domains."
  }

  assert {
    condition = (
      aws_route53_resolver_firewall_rule.block_all[0].action == "BLOCK" &&
      aws_route53_resolver_firewall_rule.block_all[0].block_response == "NXDOMAIN" &&
      aws_route53_resolver_firewall_domain_list.everything[0].domains == toset(["*"])
    )
    error_message = "The last rule must BLOCK * with NXDOMAIN."
  }

  assert {
    condition     = aws_route53_resolver_firewall_rule_group_association.this[0].vpc_id == "vpc-0123456789abcdef0"
    error_message = "The rule group must be associated with the VPC."
  }

  assert {
    condition     = aws_route53_resolver_firewall_config.this[0].firewall_fail_open == "DISABLED" && aws_route53_resolver_firewall_config.this[0].resource_id == "vpc-0123456789abcdef0"
    error_message = "The firewall must fail closed."
  }

  assert {
    condition     = aws_route53_resolver_firewall_rule_group_association.this[0].mutation_protection == "ENABLED"
    error_message = "The association is protected from changes by default."
  }

  assert {
    condition     = aws_ec2_managed_prefix_list.egress.address_family == "IPv4" && output.egress_prefix_list_max_entries == aws_ec2_managed_prefix_list.egress.max_entries
    error_message = "The egress prefix list must exist and report its max_entries (its weight in security group rules)."
  }
}

run "disabled_keeps_only_the_prefix_list" {
  command = plan

  variables {
    enabled = false
  }

  assert {
    condition     = length(aws_route53_resolver_firewall_rule.allow) == 0 && length(aws_route53_resolver_firewall_config.this) == 0
    error_message = "enabled = false must create no firewall resource."
  }

  assert {
    condition     = aws_ec2_managed_prefix_list.egress.name == "t-workspace-egress"
    error_message = "The prefix list is created even without the firewall."
  }
}

run "bare_wildcard_is_refused" {
  command = plan

  variables {
    allowed_domains = ["*"]
  }

  expect_failures = [var.allowed_domains]
}

run "teardown_lifts_mutation_protection" {
  command = plan

  variables {
    mutation_protection = false
  }

  assert {
    condition     = aws_route53_resolver_firewall_rule_group_association.this[0].mutation_protection == "DISABLED"
    error_message = "mutation_protection = false must let the association be removed."
  }
}
