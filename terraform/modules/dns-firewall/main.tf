# Route 53 Resolver DNS Firewall for the VPC: the listed domains resolve, every other name
# gets NXDOMAIN. Rules are evaluated in ascending priority, so ALLOW (100) is evaluated
# before the catch-all BLOCK (1000). Fail-closed: if the firewall cannot evaluate a query,
# the query is blocked.

locals {
  allow_priority = 100
  block_priority = 1000
}

resource "aws_route53_resolver_firewall_domain_list" "allowed" {
  count = var.enabled ? 1 : 0

  name    = "${var.name}-allowed"
  domains = var.allowed_domains

  tags = var.tags
}

resource "aws_route53_resolver_firewall_domain_list" "everything" {
  count = var.enabled ? 1 : 0

  name    = "${var.name}-everything"
  domains = ["*"]

  tags = var.tags
}

resource "aws_route53_resolver_firewall_rule_group" "this" {
  count = var.enabled ? 1 : 0

  name = "${var.name}-egress"

  tags = var.tags
}

resource "aws_route53_resolver_firewall_rule" "allow" {
  count = var.enabled ? 1 : 0

  name                    = "allow-listed-domains"
  firewall_rule_group_id  = aws_route53_resolver_firewall_rule_group.this[0].id
  firewall_domain_list_id = aws_route53_resolver_firewall_domain_list.allowed[0].id
  priority                = local.allow_priority
  action                  = "ALLOW"
}

resource "aws_route53_resolver_firewall_rule" "block_all" {
  count = var.enabled ? 1 : 0

  name                    = "block-everything-else"
  firewall_rule_group_id  = aws_route53_resolver_firewall_rule_group.this[0].id
  firewall_domain_list_id = aws_route53_resolver_firewall_domain_list.everything[0].id
  priority                = local.block_priority
  action                  = "BLOCK"
  block_response          = "NXDOMAIN"
}

resource "aws_route53_resolver_firewall_rule_group_association" "this" {
  count = var.enabled ? 1 : 0

  name                   = "${var.name}-egress"
  firewall_rule_group_id = aws_route53_resolver_firewall_rule_group.this[0].id
  vpc_id                 = var.vpc_id
  priority               = var.association_priority
  # While ENABLED, AWS refuses to change or remove the association, so `terraform destroy`
  # fails: teardown first applies mutation_protection = false (docs/deploy.md).
  mutation_protection = var.mutation_protection ? "ENABLED" : "DISABLED"

  tags = var.tags

  depends_on = [
    aws_route53_resolver_firewall_rule.allow,
    aws_route53_resolver_firewall_rule.block_all,
  ]
}

resource "aws_route53_resolver_firewall_config" "this" {
  count = var.enabled ? 1 : 0

  resource_id        = var.vpc_id
  firewall_fail_open = "DISABLED"
}

# --- Egress prefix list --------------------------------------------------------------------
# CIDRs of the allowed external destinations, referenced by the workspace security group.
# The egress-sync Lambda resolves the allowed domains and rewrites the entries, so
# Terraform creates the list and leaves its entries alone afterwards.

resource "aws_ec2_managed_prefix_list" "egress" {
  name           = "${var.name}-workspace-egress"
  address_family = "IPv4"
  max_entries    = var.egress_prefix_list_max_entries

  dynamic "entry" {
    for_each = var.egress_prefix_list_initial_entries
    content {
      cidr        = entry.value.cidr
      description = entry.value.description
    }
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [entry]
  }
}
