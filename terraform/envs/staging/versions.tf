terraform {
  required_version = ">= 1.10.0" # use_lockfile (S3 native locking)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State in S3 with native locking; configure per account with
  # terraform init -backend-config=backend.hcl (docs/deploy.md).
  backend "s3" {}
}
