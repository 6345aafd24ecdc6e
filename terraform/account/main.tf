# The account baseline: settings that belong to the AWS account (per region), not to an
# environment. Applied once per account and region before any environment, destroyed after
# the last one (docs/deploy.md). Environments never own these: destroying staging must not
# turn trunking off for production.
#
# What it publishes, environments read: each setting's effective value goes into an SSM
# parameter under var.parameter_prefix, and the ecs-cluster module refuses to create its
# Auto Scaling group until that parameter says "enabled".

locals {
  # Account-wide ECS defaults the estate needs. awsvpcTrunking raises the number of awsvpc
  # tasks (ENIs) per container instance; it applies to instances registered after it is set.
  ecs_settings = {
    awsvpcTrunking = "enabled"
  }
}

resource "aws_ecs_account_setting_default" "this" {
  for_each = var.manage_ecs_account_settings ? local.ecs_settings : {}

  name  = each.key
  value = each.value
}

# "unmanaged" where the setting cannot be managed (moto): environments that require the
# setting then refuse to plan, which is the point.
resource "aws_ssm_parameter" "ecs_setting" {
  #checkov:skip=CKV2_AWS_34:a public account setting ("enabled"), not a secret; environments read it in plans
  for_each = local.ecs_settings

  name        = "${var.parameter_prefix}/ecs/${each.key}"
  description = "Account default of the ECS setting ${each.key}, as applied by terraform/account."
  type        = "String"
  # insecure_value: a setting, not a secret (readable in plans and outputs).
  insecure_value = var.manage_ecs_account_settings ? aws_ecs_account_setting_default.this[each.key].value : "unmanaged"

  tags = var.tags
}

# Image repositories are account-level: an image is built once, scanned on push, and the
# same digest is promoted from staging to production.
module "ecr" {
  source = "../modules/ecr"

  name = var.ecr_namespace

  tags = var.tags
}
