terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Local state: tests/infra/run.sh applies this environment in a temporary copy of terraform/.
}
