# Plan-level tests of the whole composition (run from an environment directory with
# -test-directory, see tests/infra/run.sh): what each workload can reach once every module
# is wired, and what an environment refuses to plan. The Route 53 Resolver DNS Firewall,
# the account setting and the ECS service autoscaling only exist here at plan level.

mock_provider "aws" {
  mock_resource "aws_launch_template" {
    defaults = {
      id = "lt-0123456789abcdef0"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:loadbalancer/app/cp/1"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/cp/1"
    }
  }
  mock_resource "aws_lb_listener" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:listener/app/cp/1/2"
    }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::111111111111:instance-profile/t"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/t"
    }
  }
  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:us-east-1:111111111111:t"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:111111111111:log-group:t"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:111111111111:key/t"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:t-AbCdEf"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:111111111111:task-definition/t:1"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:111111111111:cluster/t"
    }
  }
  mock_resource "aws_autoscaling_group" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:111111111111:autoScalingGroup:1:autoScalingGroupName/t"
    }
  }
  mock_resource "aws_ec2_managed_prefix_list" {
    defaults = {
      arn = "arn:aws:ec2:us-east-1:111111111111:prefix-list/pl-1"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::t-workspaces"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn = "arn:aws:lambda:us-east-1:111111111111:function:t"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "111111111111"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"
    }
  }
  mock_data "aws_ssm_parameter" {
    defaults = {
      insecure_value = "enabled"
    }
  }
}

variables {
  name                     = "ws-test"
  region                   = "us-east-1"
  vpc_cidr                 = "10.20.0.0/16"
  ami_id                   = "ami-0123456789abcdef0"
  instance_type            = "c6i.xlarge"
  asg_min_size             = 2
  asg_max_size             = 4
  warm_pool_min_size       = 1
  workspaces_per_host      = 3
  control_plane_min_count  = 1
  control_plane_max_count  = 2
  redis_node_type          = "cache.t3.micro"
  redis_num_cache_clusters = 1
  redis_multi_az           = false
  bucket_name              = "t-workspaces"
  images = {
    agent             = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/workspace@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    proxy             = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/proxy-sidecar@sha256:2222222222222222222222222222222222222222222222222222222222222222"
    control_plane     = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/control-plane@sha256:3333333333333333333333333333333333333333333333333333333333333333"
    metrics_collector = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/metrics-collector@sha256:4444444444444444444444444444444444444444444444444444444444444444"
  }
  certificate_arn         = "arn:aws:acm:us-east-1:111111111111:certificate/abc"
  bedrock_model_arns      = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"]
  allowed_domains         = ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
  alb_ingress_cidr_blocks = ["10.9.0.0/16"]
}

# The acceptance matrix: SG rules resolved through referenced groups and prefix lists, and
# groups mapped to the endpoints they hold. A workspace ENI reaches the bedrock-runtime
# endpoint and the egress prefix list only: no other endpoint, never 0.0.0.0/0.
run "reachability_of_every_workload" {
  command = plan

  assert {
    condition = jsonencode(output.reachability) == jsonencode({
      alb           = ["group:control_plane:8080"]
      bedrock       = []
      control_plane = ["group:endpoints:443", "group:redis:6379", "group:workspace:9000", "prefix-list:s3:443"]
      endpoints     = []
      instance      = ["cidr:0.0.0.0/0:443", "group:endpoints:443"]
      lambda        = ["group:endpoints:443", "group:redis:6379", "prefix-list:s3:443"]
      redis         = []
      workspace     = ["group:bedrock:443", "prefix-list:egress:443"]
    })
    error_message = "Reachability differs from the intended matrix: ${jsonencode(output.reachability)}"
  }

  assert {
    condition     = length([for d in output.reachability["workspace"] : d if startswith(d, "cidr:")]) == 0
    error_message = "A workspace must have no CIDR destination (0.0.0.0/0 least of all)."
  }
}

# Security group ids exist only after apply: this run applies against the mock provider to
# map the groups a workspace reaches onto the endpoints that sit in them.
run "workspaces_reach_the_bedrock_endpoint_only" {
  command = apply

  assert {
    condition = toset([for svc, sgs in module.network.interface_endpoint_security_group_ids : svc
      if length(setintersection(sgs, [for d in output.reachability["workspace"] : module.security_groups.group_ids[split(":", d)[1]] if startswith(d, "group:")])) > 0
    ]) == toset(["bedrock-runtime"])
    error_message = "Of the interface endpoints, a workspace reaches bedrock-runtime only."
  }

}

# The refusals themselves (over the quota, trunking not enabled) are preconditions inside
# the modules, tested there (expect_failures cannot name a module's resources).
run "every_security_group_fits_the_quota" {
  command = plan

  assert {
    condition     = alltrue([for g, w in output.security_group_rule_weights : w.ingress <= 60 && w.egress <= 60])
    error_message = "A security group exceeds 60 rules per direction: ${jsonencode(output.security_group_rule_weights)}"
  }

  assert {
    condition     = output.awsvpc_trunking == "enabled"
    error_message = "The hosts are planned from the account baseline's published trunking setting."
  }
}

run "dns_firewall_allows_only_named_aws_domains" {
  command = plan

  assert {
    condition     = !contains(module.dns_firewall.allowed_domains, "*.amazonaws.com") && !contains(module.dns_firewall.allowed_domains, "amazonaws.com")
    error_message = "The DNS Firewall must not allow every amazonaws.com name."
  }

  assert {
    condition     = contains(module.dns_firewall.allowed_domains, "*.us-east-1.amazonaws.com") && contains(module.dns_firewall.allowed_domains, "pypi.org")
    error_message = "The region's AWS names and the external allowed_domains resolve."
  }
}

run "no_plan_without_the_packer_ami" {
  command = plan

  variables {
    ami_id = null
  }

  expect_failures = [var.ami_id]
}

run "images_only_by_digest" {
  command = plan

  variables {
    images = {
      agent             = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/workspace:latest"
      proxy             = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/proxy-sidecar@sha256:2222222222222222222222222222222222222222222222222222222222222222"
      control_plane     = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/control-plane@sha256:3333333333333333333333333333333333333333333333333333333333333333"
      metrics_collector = "111111111111.dkr.ecr.us-east-1.amazonaws.com/workspaces/metrics-collector@sha256:4444444444444444444444444444444444444444444444444444444444444444"
    }
  }

  expect_failures = [var.images]
}
