mock_provider "aws" {
  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:us-east-1:111111111111:t-alarms"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:111111111111:key/k"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name                   = "t"
  cluster_name           = "t"
  capacity_provider_name = "t-ec2"
  lambda_function_names  = { gc = "t-gc", warm-pool = "t-warm-pool" }
}

run "alarms_topic_log_groups" {
  command = apply

  assert {
    condition     = aws_cloudwatch_metric_alarm.run_task_failures.metric_name == "RunTaskFailures" && aws_cloudwatch_log_metric_filter.run_task_failures.log_group_name == "/ecs/t/control-plane"
    error_message = "RunTask failures are counted from the control plane's logs and alarmed on."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.capacity_reservation.namespace == "AWS/ECS/ManagedScaling" &&
      aws_cloudwatch_metric_alarm.capacity_reservation.metric_name == "CapacityProviderReservation" &&
      aws_cloudwatch_metric_alarm.capacity_reservation.dimensions == tomap({ ClusterName = "t", CapacityProviderName = "t-ec2" })
    )
    error_message = "Capacity-provider reservation alarm on the cluster's provider."
  }

  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.lambda_errors : a.dimensions.FunctionName]) == toset(["t-gc", "t-warm-pool"])
    error_message = "One Lambda errors alarm per function."
  }

  assert {
    condition = alltrue([for a in concat([aws_cloudwatch_metric_alarm.run_task_failures, aws_cloudwatch_metric_alarm.capacity_reservation], values(aws_cloudwatch_metric_alarm.lambda_errors)) :
    a.alarm_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "Every alarm notifies the SNS topic."
  }

  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.this[0].arn && aws_kms_key.this[0].enable_key_rotation
    error_message = "The topic is encrypted with the rotated environment key."
  }

  assert {
    condition     = toset(keys(aws_cloudwatch_log_group.this)) == toset(["workspace_agent", "workspace_proxy", "control_plane"])
    error_message = "Log groups of the agent, the sidecar and the control plane."
  }
}
