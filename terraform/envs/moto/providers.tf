# Provider wired to a moto_server started by tests/infra/run.sh (never real AWS: fake
# credentials, every endpoint on loopback).

variable "moto_endpoint" {
  description = "URL of the moto_server to use, e.g. http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost):[0-9]+$", var.moto_endpoint))
    error_message = "moto_endpoint must be a loopback http URL."
  }
}

provider "aws" {
  region                      = var.region
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  max_retries                 = 1

  endpoints {
    acm                    = var.moto_endpoint
    applicationautoscaling = var.moto_endpoint
    autoscaling            = var.moto_endpoint
    cloudwatch             = var.moto_endpoint
    ec2                    = var.moto_endpoint
    ecr                    = var.moto_endpoint
    ecs                    = var.moto_endpoint
    elasticache            = var.moto_endpoint
    elbv2                  = var.moto_endpoint
    iam                    = var.moto_endpoint
    kms                    = var.moto_endpoint
    lambda                 = var.moto_endpoint
    logs                   = var.moto_endpoint
    route53resolver        = var.moto_endpoint
    s3                     = var.moto_endpoint
    scheduler              = var.moto_endpoint
    secretsmanager         = var.moto_endpoint
    sns                    = var.moto_endpoint
    ssm                    = var.moto_endpoint
    sts                    = var.moto_endpoint
  }

  # No default_tags: moto echoes a launch template's own tags back as a launch-template
  # tag specification of its data, which would show as drift.
}
