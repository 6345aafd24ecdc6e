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
