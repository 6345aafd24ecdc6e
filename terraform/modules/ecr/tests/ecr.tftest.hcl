mock_provider "aws" {}

variables {
  name        = "t"
  kms_key_arn = "arn:aws:kms:us-east-1:111111111111:key/k"
}

run "immutable_tags_scanned_on_push_encrypted" {
  command = plan

  assert {
    condition     = toset(keys(aws_ecr_repository.this)) == toset(["workspace", "proxy-sidecar", "control-plane", "metrics-collector"])
    error_message = "One repository per image of the estate."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_tag_mutability == "IMMUTABLE"])
    error_message = "Tags must be immutable: a deployed tag can never be repointed."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_scanning_configuration[0].scan_on_push])
    error_message = "Every push must be scanned."
  }

  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.encryption_configuration[0].encryption_type == "KMS" && !r.force_delete])
    error_message = "Images encrypted with the environment key; repositories holding images are not deleted."
  }
}
