# Redis (cluster mode disabled) for the control plane's state: Multi-AZ with automatic
# failover, encrypted at rest and in transit, AUTH token generated into Secrets Manager.

resource "aws_elasticache_subnet_group" "this" {
  count = var.create_replication_group ? 1 : 0

  name       = "${var.name}-redis"
  subnet_ids = var.subnet_ids

  tags = var.tags
}

# A fresh random password on every read: the secret keeps the first one (ignore_changes).
data "aws_secretsmanager_random_password" "auth" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "auth" {
  name_prefix             = "${var.name}/redis-auth-token-"
  description             = "AUTH token of the ${var.name} Redis replication group."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = var.tags
}

resource "aws_secretsmanager_secret_version" "auth" {
  secret_id     = aws_secretsmanager_secret.auth.id
  secret_string = data.aws_secretsmanager_random_password.auth.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_elasticache_replication_group" "this" {
  count = var.create_replication_group ? 1 : 0

  replication_group_id = var.name
  description          = "${var.name} control-plane state"
  engine               = "redis"
  engine_version       = var.engine_version
  parameter_group_name = var.parameter_group_name
  node_type            = var.node_type
  port                 = 6379
  num_cache_clusters   = var.num_cache_clusters

  multi_az_enabled           = var.multi_az
  automatic_failover_enabled = var.multi_az

  subnet_group_name  = aws_elasticache_subnet_group.this[0].name
  security_group_ids = var.security_group_ids

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = aws_secretsmanager_secret_version.auth.secret_string

  snapshot_retention_limit   = var.snapshot_retention_limit
  auto_minor_version_upgrade = true
  apply_immediately          = false

  tags = var.tags

  lifecycle {
    precondition {
      condition     = !var.multi_az || var.num_cache_clusters >= 2
      error_message = "Multi-AZ needs num_cache_clusters >= 2."
    }
  }
}
