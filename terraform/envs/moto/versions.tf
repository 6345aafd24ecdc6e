terraform {
  required_version = ">= 1.10.0" # use_lockfile (S3 native locking)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Local state: tests/infra/run.sh applies this environment in a temporary copy of terraform/.
}
