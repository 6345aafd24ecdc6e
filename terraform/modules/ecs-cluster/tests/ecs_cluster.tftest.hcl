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
  awsvpc_trunking             = "enabled"
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
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "\nECS_TASK_PIDS_LIMIT=1024\n")
    error_message = "User data must bound every task's pids (ECS_TASK_PIDS_LIMIT)."
  }

  assert {
    condition     = !strcontains(base64decode(aws_launch_template.this.user_data), "ECS_ENABLE_TASK_ENI_TRUNKING")
    error_message = "ECS_ENABLE_TASK_ENI_TRUNKING does not exist; trunking is an account setting."
  }
}

run "cluster_container_insights" {
  command = plan

  assert {
    condition     = jsonencode([for s in aws_ecs_cluster.this.setting : s.value if s.name == "containerInsights"]) == jsonencode(["enabled"])
    error_message = "Container Insights must be enabled."
  }
}

# The account baseline (terraform/account) owns awsvpcTrunking; hosts started before it is
# enabled never get a trunk ENI, so the ASG refuses to plan until the baseline says so.
run "hosts_wait_for_the_trunking_account_setting" {
  command = plan

  variables {
    awsvpc_trunking = "disabled"
  }

  expect_failures = [aws_autoscaling_group.this]
}

run "hosts_wait_for_an_applied_account_baseline" {
  command = plan

  variables {
    awsvpc_trunking = null
  }

  expect_failures = [aws_autoscaling_group.this]
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

run "no_silent_downgrade_to_the_stock_ami" {
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

  expect_failures = [aws_launch_template.this]
}

run "ssm_parameter_ami_only_when_allowed" {
  command = plan

  variables {
    ami_id             = null
    require_custom_ami = false
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

run "pids_limit_cannot_be_overridden" {
  command = plan

  variables {
    extra_ecs_config = { ECS_TASK_PIDS_LIMIT = "4194304" }
  }

  expect_failures = [var.extra_ecs_config]
}

run "ami_rollout_by_instance_refresh" {
  command = plan

  assert {
    condition = (
      aws_autoscaling_group.this.instance_refresh[0].strategy == "Rolling" &&
      aws_autoscaling_group.this.instance_refresh[0].preferences[0].scale_in_protected_instances == "Refresh" &&
      aws_autoscaling_group.this.instance_refresh[0].preferences[0].min_healthy_percentage == 100
    )
    error_message = "A new launch template version rolls every host, scale-in protected ones included, without losing capacity."
  }
}

run "security_settings_cannot_be_overridden" {
  command = plan

  variables {
    extra_ecs_config = { ECS_AWSVPC_BLOCK_IMDS = "false" }
  }

  expect_failures = [var.extra_ecs_config]
}
