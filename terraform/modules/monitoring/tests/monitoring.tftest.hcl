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

  autoscaling_group_name     = "t-asg"
  workspace_task_capacity    = 24
  alb_arn_suffix             = "app/cp/1"
  target_group_arn_suffix    = "targetgroup/cp/2"
  nat_gateway_ids            = ["nat-a", "nat-b"]
  redis_replication_group_id = "t-state"
  redis_num_cache_clusters   = 2
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
    condition     = toset(keys(aws_cloudwatch_log_group.this)) == toset(["workspace_agent", "workspace_proxy", "control_plane", "control_plane_metrics"])
    error_message = "Log groups of the agent, the sidecar, the control plane and its metrics (EMF)."
  }
}

run "operational_alarms_cover_the_estate" {
  command = apply

  assert {
    condition = toset(keys(aws_cloudwatch_metric_alarm.ops)) == toset([
      "host-cpu", "host-memory", "running-tasks", "host-warm-pool-depleted", "workspace-warm-pool-exhausted",
      "alb-5xx", "target-5xx", "unhealthy-targets", "nat-0-port-allocation", "nat-1-port-allocation",
      "redis-0-memory", "redis-1-memory", "redis-0-evictions", "redis-1-evictions",
    ])
    error_message = "Alarms for host CPU/memory, task capacity, both warm pools, ALB 5xx and health, NAT ports and Redis memory/evictions."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.ops["running-tasks"].threshold == 19 &&
      aws_cloudwatch_metric_alarm.ops["redis-1-evictions"].dimensions == tomap({ CacheClusterId = "t-state-002" }) &&
      aws_cloudwatch_metric_alarm.ops["nat-1-port-allocation"].dimensions == tomap({ NatGatewayId = "nat-b" }) &&
      aws_cloudwatch_metric_alarm.ops["host-warm-pool-depleted"].dimensions == tomap({ AutoScalingGroupName = "t-asg" })
    )
    error_message = "Each alarm watches its own resource (80 % of 24 tasks, the second Redis node, the second NAT, the ASG)."
  }

  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.ops : a.alarm_actions == toset([aws_sns_topic.alarms.arn]) && a.ok_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "Every operational alarm notifies the topic."
  }

  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets) == length(aws_cloudwatch_metric_alarm.ops) + 1
    error_message = "The dashboard shows every alarmed metric and the DNS Firewall blocks."
  }
}
