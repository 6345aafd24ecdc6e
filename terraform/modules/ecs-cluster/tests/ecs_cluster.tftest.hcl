mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::111111111111:instance-profile/test"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/test"
    }
  }
  mock_resource "aws_autoscaling_group" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:111111111111:autoScalingGroup:1:autoScalingGroupName/test"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name                        = "test"
  subnet_ids                  = ["subnet-a", "subnet-b"]
  instance_security_group_ids = ["sg-instance"]
  ami_id                      = "ami-0123456789abcdef0"
}

run "launch_template_imdsv2_hop_limit_1_encrypted" {
  command = plan

  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required."
  }

  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "The IMDS hop limit must be 1."
  }

  assert {
    condition     = aws_launch_template.this.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "The root volume must be encrypted."
  }

  assert {
    condition     = aws_launch_template.this.image_id == "ami-0123456789abcdef0"
    error_message = "The given AMI must be used."
  }
}

run "user_data_writes_the_agent_settings" {
  command = plan

  assert {
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "\nECS_AWSVPC_BLOCK_IMDS=true\n")
    error_message = "User data must set ECS_AWSVPC_BLOCK_IMDS=true."
  }

  assert {
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "\nECS_WARM_POOLS_CHECK=true\n")
    error_message = "User data must set ECS_WARM_POOLS_CHECK=true."
  }

  assert {
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "\nECS_CLUSTER=test\n")
    error_message = "User data must name the cluster."
  }

  assert {
    condition = alltrue([for l in [
      "ECS_IMAGE_PULL_BEHAVIOR=prefer-cached", "ECS_CONTAINER_STOP_TIMEOUT=30s",
      "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=1h", "ECS_DISABLE_PRIVILEGED=true",
    ] : strcontains(base64decode(aws_launch_template.this.user_data), "\n${l}\n")])
    error_message = "User data must carry the image pull, stop timeout, cleanup and privileged settings."
  }

  assert {
    condition     = !strcontains(base64decode(aws_launch_template.this.user_data), "ECS_ENABLE_TASK_ENI_TRUNKING")
    error_message = "ECS_ENABLE_TASK_ENI_TRUNKING does not exist; trunking is an account setting."
  }
}

run "trunking_account_setting_present" {
  command = plan

  assert {
    condition     = aws_ecs_account_setting_default.trunking[0].name == "awsvpcTrunking" && aws_ecs_account_setting_default.trunking[0].value == "enabled"
    error_message = "The awsvpcTrunking account setting must be enabled."
  }

  assert {
    condition     = jsonencode([for s in aws_ecs_cluster.this.setting : s.value if s.name == "containerInsights"]) == jsonencode(["enabled"])
    error_message = "Container Insights must be enabled."
  }
}

run "account_setting_can_be_switched_off" {
  command = plan

  variables {
    manage_account_settings = false
  }

  assert {
    condition     = length(aws_ecs_account_setting_default.trunking) == 0
    error_message = "manage_account_settings = false must not manage the account setting."
  }
}

run "warm_pool_scale_in_protection_capacity_provider" {
  command = plan

  assert {
    condition     = aws_autoscaling_group.this.warm_pool[0].pool_state == "Stopped" && aws_autoscaling_group.this.warm_pool[0].min_size == 1
    error_message = "The ASG must keep a Stopped warm pool."
  }

  assert {
    condition     = aws_autoscaling_group.this.protect_from_scale_in == true
    error_message = "Scale-in protection is required by managed termination protection."
  }

  assert {
    condition = (
      aws_ecs_capacity_provider.this.auto_scaling_group_provider[0].managed_termination_protection == "ENABLED" &&
      aws_ecs_capacity_provider.this.auto_scaling_group_provider[0].managed_scaling[0].status == "ENABLED" &&
      aws_ecs_capacity_provider.this.auto_scaling_group_provider[0].managed_scaling[0].target_capacity == 85
    )
    error_message = "The capacity provider must use managed scaling at 85 % and managed termination protection."
  }

  assert {
    condition     = [for s in aws_ecs_cluster_capacity_providers.this.default_capacity_provider_strategy : s.capacity_provider] == ["test-ec2"]
    error_message = "The capacity provider must be the cluster default."
  }
}

run "ssm_parameter_ami_when_no_ami_given" {
  command = plan

  variables {
    ami_id = null
  }

  override_data {
    target = data.aws_ssm_parameter.ecs_ami[0]
    values = {
      value = "ami-fromssm00000000"
    }
  }

  assert {
    condition     = aws_launch_template.this.image_id == "ami-fromssm00000000"
    error_message = "Without ami_id the ECS-optimized AL2023 AMI from SSM must be used."
  }
}

run "security_settings_cannot_be_overridden" {
  command = plan

  variables {
    extra_ecs_config = { ECS_AWSVPC_BLOCK_IMDS = "false" }
  }

  expect_failures = [var.extra_ecs_config]
}
