data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : null

  log_groups = {
    workspace_agent = "/ecs/${var.name}/workspace-agent"
    workspace_proxy = "/ecs/${var.name}/workspace-proxy"
    control_plane   = "/ecs/${var.name}/control-plane"
    # EMF records of the control plane's Prometheus metrics (the in-task ADOT collector).
    control_plane_metrics = "/ecs/${var.name}/control-plane-metrics"
  }
  metric_namespace = "${var.name}/ControlPlane"
}

# --- KMS key of the environment ---------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  statement {
    sid       = "AccountAdministersAndDelegatesViaIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsTheEnvironmentsLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "${var.name}: logs, alarm topic, secrets, workspace bucket, Redis"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

# --- Log groups of the ECS workloads ----------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn

  tags = var.tags
}

# --- Alarm topic --------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = local.kms_key_arn

  tags = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Alarms -------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_metric_filter" "run_task_failures" {
  name           = "${var.name}-run-task-failures"
  log_group_name = aws_cloudwatch_log_group.this["control_plane"].name
  pattern        = var.run_task_failure_pattern

  metric_transformation {
    name          = "RunTaskFailures"
    namespace     = local.metric_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "run_task_failures" {
  alarm_name          = "${var.name}-run-task-failures"
  alarm_description   = "The control plane's ecs:RunTask calls are failing (capacity, ENIs, throttling or IAM)."
  namespace           = local.metric_namespace
  metric_name         = "RunTaskFailures"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.run_task_failure_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.run_task_failures]
}

resource "aws_cloudwatch_metric_alarm" "capacity_reservation" {
  alarm_name          = "${var.name}-capacity-provider-reservation"
  alarm_description   = "Workspace tasks wait for EC2 capacity: CapacityProviderReservation above ${var.capacity_reservation_threshold}% for 15 minutes (ASG at max size or warm pool exhausted)."
  namespace           = "AWS/ECS/ManagedScaling"
  metric_name         = "CapacityProviderReservation"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.capacity_reservation_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    ClusterName          = var.cluster_name
    CapacityProviderName = var.capacity_provider_name
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = var.lambda_function_names

  alarm_name          = "${var.name}-lambda-${each.key}-errors"
  alarm_description   = "Scheduled Lambda ${each.value} failed in two consecutive 5-minute periods."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    FunctionName = each.value
  }

  tags = var.tags
}

# --- Operational alarms ---------------------------------------------------------------------
# One table, one resource: hosts, workspace capacity, the ALB, Redis, NAT, both warm pools.
# Every alarm notifies the topic, on alarm and on recovery.

locals {
  alb_dimensions = { LoadBalancer = var.alb_arn_suffix }
  tg_dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }

  # Keys of alarms must be known at plan time: they come from counts, never from ids.
  redis_nodes = [for i in range(var.redis_num_cache_clusters) : format("%s-%03d", var.redis_replication_group_id, i + 1)]

  alarm_specs = merge(
    {
      host-cpu = {
        description = "Workspace hosts: cluster CPU utilisation above ${var.host_cpu_threshold}% for 15 minutes."
        namespace   = "AWS/ECS", metric = "CPUUtilization", statistic = "Average", periods = 3
        dimensions  = { ClusterName = var.cluster_name }, comparison = "GreaterThanThreshold", threshold = var.host_cpu_threshold
      }
      host-memory = {
        description = "Workspace hosts: cluster memory utilisation above ${var.host_memory_threshold}% for 15 minutes."
        namespace   = "AWS/ECS", metric = "MemoryUtilization", statistic = "Average", periods = 3
        dimensions  = { ClusterName = var.cluster_name }, comparison = "GreaterThanThreshold", threshold = var.host_memory_threshold
      }
      running-tasks = {
        description = "Running tasks above ${var.task_capacity_alarm_percent}% of the cluster's capacity (${var.workspace_task_capacity} tasks at the ASG's maximum): raise asg_max_size."
        namespace   = "ECS/ContainerInsights", metric = "TaskCount", statistic = "Maximum", periods = 2
        dimensions  = { ClusterName = var.cluster_name }, comparison = "GreaterThanThreshold"
        threshold   = floor(var.workspace_task_capacity * var.task_capacity_alarm_percent / 100)
      }
      host-warm-pool-depleted = {
        description = "The EC2 warm pool of the workspace hosts is empty: scale-out waits for cold boots."
        namespace   = "AWS/AutoScaling", metric = "WarmPoolWarmedCapacity", statistic = "Minimum", periods = 3
        dimensions  = { AutoScalingGroupName = var.autoscaling_group_name }, comparison = "LessThanThreshold", threshold = 1
      }
      workspace-warm-pool-exhausted = {
        description = "The control plane found its pool of pre-started workspaces empty (workspace_warm_pool_exhausted): conversations start cold."
        namespace   = local.metric_namespace, metric = "workspace_warm_pool_exhausted", statistic = "Sum", periods = 1
        dimensions  = {}, comparison = "GreaterThanOrEqualToThreshold", threshold = var.warm_pool_exhausted_threshold
      }
    },
    !var.alb_alarms ? {} : {
      alb-5xx = {
        description = "The control plane's ALB answered 5xx itself (no healthy target, timeouts)."
        namespace   = "AWS/ApplicationELB", metric = "HTTPCode_ELB_5XX_Count", statistic = "Sum", periods = 1
        dimensions  = local.alb_dimensions, comparison = "GreaterThanOrEqualToThreshold", threshold = var.alb_5xx_threshold
      }
      target-5xx = {
        description = "The control plane answered 5xx through the ALB."
        namespace   = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", statistic = "Sum", periods = 1
        dimensions  = local.alb_dimensions, comparison = "GreaterThanOrEqualToThreshold", threshold = var.alb_5xx_threshold
      }
      unhealthy-targets = {
        description = "A control-plane task fails the ALB health check (/health/ready)."
        namespace   = "AWS/ApplicationELB", metric = "UnHealthyHostCount", statistic = "Maximum", periods = 3
        dimensions  = local.tg_dimensions, comparison = "GreaterThanOrEqualToThreshold", threshold = 1
      }
    },
    { for i in range(length(var.nat_gateway_ids)) : "nat-${i}-port-allocation" => {
      description = "NAT gateway ${i} cannot allocate source ports (ErrorPortAllocation): egress connections fail."
      namespace   = "AWS/NATGateway", metric = "ErrorPortAllocation", statistic = "Sum", periods = 1
      dimensions  = { NatGatewayId = var.nat_gateway_ids[i] }, comparison = "GreaterThanOrEqualToThreshold", threshold = 1
    } },
    { for i, node in local.redis_nodes : "redis-${i}-memory" => {
      description = "Redis node ${node}: memory above ${var.redis_memory_threshold}% of maxmemory."
      namespace   = "AWS/ElastiCache", metric = "DatabaseMemoryUsagePercentage", statistic = "Maximum", periods = 3
      dimensions  = { CacheClusterId = node }, comparison = "GreaterThanThreshold", threshold = var.redis_memory_threshold
    } },
    { for i, node in local.redis_nodes : "redis-${i}-evictions" => {
      description = "Redis node ${node} evicts keys: control-plane state is being lost."
      namespace   = "AWS/ElastiCache", metric = "Evictions", statistic = "Sum", periods = 1
      dimensions  = { CacheClusterId = node }, comparison = "GreaterThanOrEqualToThreshold", threshold = 1
    } },
  )
}

resource "aws_cloudwatch_metric_alarm" "ops" {
  for_each = local.alarm_specs

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = "notBreaching"
  dimensions          = each.value.dimensions
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = var.tags
}

# --- Dashboard --------------------------------------------------------------------------------

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat(
      [for i, k in sort(keys(local.alarm_specs)) : {
        type   = "metric"
        x      = (i % 3) * 8
        y      = floor(i / 3) * 6
        width  = 8
        height = 6
        properties = {
          title       = k
          region      = local.region
          stat        = local.alarm_specs[k].statistic
          period      = 300
          metrics     = [concat([local.alarm_specs[k].namespace, local.alarm_specs[k].metric], flatten([for dk, dv in local.alarm_specs[k].dimensions : [dk, dv]]))]
          annotations = { horizontal = [{ label = "alarm", value = local.alarm_specs[k].threshold }] }
        }
      }],
      [{
        type   = "log"
        x      = 0
        y      = ceil(length(local.alarm_specs) / 3) * 6
        width  = 24
        height = 6
        properties = {
          title  = "DNS Firewall blocks (Resolver query logs)"
          region = local.region
          query  = "SOURCE '${coalesce(var.resolver_query_log_group_name, "/vpc/${var.name}/resolver-queries")}' | fields @timestamp, query_name, srcids.instance, firewall_rule_action | filter firewall_rule_action = 'BLOCK' | sort @timestamp desc | limit 100"
        }
      }],
    )
  })
}
