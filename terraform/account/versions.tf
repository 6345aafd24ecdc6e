terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State in S3 with native locking; configure per account with
  # terraform init -backend-config=backend.hcl (docs/deploy.md), key e.g.
  # workspaces/account-us-east-1.tfstate.
  backend "s3" {}
}
