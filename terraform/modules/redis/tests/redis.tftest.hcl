mock_provider "aws" {
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"
    }
  }
}

variables {
  name               = "t"
  subnet_ids         = ["subnet-a", "subnet-b"]
  security_group_ids = ["sg-redis"]
}

run "multi_az_encrypted_with_auth" {
  command = apply

  assert {
    condition = (
      aws_elasticache_replication_group.this[0].multi_az_enabled &&
      aws_elasticache_replication_group.this[0].automatic_failover_enabled &&
      aws_elasticache_replication_group.this[0].num_cache_clusters == 2
    )
    error_message = "Multi-AZ with automatic failover over two nodes."
  }

  assert {
    condition     = aws_elasticache_replication_group.this[0].at_rest_encryption_enabled == "true" && aws_elasticache_replication_group.this[0].transit_encryption_enabled
    error_message = "Encrypted at rest and in transit."
  }

  assert {
    condition     = aws_elasticache_replication_group.this[0].auth_token == aws_secretsmanager_secret_version.auth.secret_string && length(aws_elasticache_replication_group.this[0].auth_token) > 0
    error_message = "The AUTH token comes from the Secrets Manager secret."
  }

  assert {
    condition     = aws_elasticache_replication_group.this[0].security_group_ids == toset(["sg-redis"])
    error_message = "The Redis SG is attached."
  }
}

run "multi_az_needs_two_nodes" {
  command = plan

  variables {
    num_cache_clusters = 1
  }

  expect_failures = [aws_elasticache_replication_group.this]
}

run "replication_group_can_be_switched_off" {
  command = plan

  variables {
    create_replication_group = false
  }

  assert {
    condition     = length(aws_elasticache_replication_group.this) == 0 && output.primary_endpoint == null
    error_message = "create_replication_group = false creates no cache."
  }
}
