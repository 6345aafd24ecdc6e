data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Any revision of the workspace family: arn:...:task-definition/<family>:<rev> -> <family>:*
  workspace_family_arn = "${join(":", slice(split(":", var.workspace_task_definition_arn), 0, 6))}:*"
  cluster_tasks_arn    = "arn:${local.partition}:ecs:${var.region}:${local.account_id}:task/${var.cluster_name}/*"

  # The control plane reads CP_* variables (nested keys with "__", control-plane/src/config.rs).
  # CP_ECS__* and CP_STORE__REDIS_PASSWORD are the names this module proposes for the ECS
  # runtime's settings (docs/deploy.md).
  redis = var.redis_endpoint == null ? {} : {
    CP_STORE__KIND      = "redis"
    CP_STORE__REDIS_URL = "rediss://${var.redis_endpoint}:${var.redis_port}"
  }

  sync = var.bucket_kms_key_arn == null ? { CP_SYNC__SSE = "aes256" } : {
    CP_SYNC__SSE            = "kms"
    CP_SYNC__SSE_KMS_KEY_ID = var.bucket_kms_key_arn
  }

  environment = merge({
    CP_LISTEN                 = "0.0.0.0:${var.container_port}"
    CP_FLEET                  = var.name
    CP_RUNTIME                = "ecs"
    CP_LOG_FORMAT             = "json"
    CP_ECS__CLUSTER           = var.cluster_name
    CP_ECS__TASK_DEFINITION   = split("/", var.workspace_task_definition_arn)[1]
    CP_ECS__SUBNETS           = join(",", var.workspace_subnet_ids)
    CP_ECS__SECURITY_GROUPS   = var.workspace_security_group_id
    CP_ECS__CAPACITY_PROVIDER = var.workspace_capacity_provider
    CP_SYNC__BACKEND          = "s3"
    CP_SYNC__S3_BUCKET        = var.bucket_name
    CP_SYNC__S3_REGION        = var.region
    # The root filesystem is read-only: sync spools (and anything else that wants a temp
    # file) go to the task's writable spool volume.
    CP_SYNC__SPOOL_DIR = local.spool_path
    TMPDIR             = local.spool_path
    AWS_REGION         = var.region
  }, local.redis, local.sync, var.environment)

  spool_path = "/var/spool/control-plane"

  # Fargate's ephemeral storage holds the image layers too; 21 GiB is the smallest size
  # the parameter accepts. Each concurrent sync may spool up to a workspace's size.
  ephemeral_storage_gib = max(21, ceil(var.max_concurrent_syncs * var.spool_gib_per_sync) + 5)

  # Prometheus metrics: an ADOT collector in the task scrapes the control plane's /metrics on
  # loopback and writes them as CloudWatch embedded metric format (EMF) to a log group, from
  # which CloudWatch extracts the metrics (namespace var.metrics_namespace). /metrics is
  # never reachable through the ALB (see aws_lb_listener_rule.block_metrics).
  collector = var.metrics_collector_image == null ? [] : [{
    name                   = "metrics-collector"
    image                  = var.metrics_collector_image
    essential              = false
    user                   = var.container_user
    readonlyRootFilesystem = true
    environment = [{
      name = "AOT_CONFIG_CONTENT"
      value = yamlencode({
        receivers = { prometheus = { config = { scrape_configs = [{
          job_name        = "control-plane"
          scrape_interval = "60s"
          static_configs  = [{ targets = ["127.0.0.1:${var.container_port}"] }]
        }] } } }
        exporters = { awsemf = {
          namespace               = var.metrics_namespace
          log_group_name          = var.metrics_log_group_name
          region                  = var.region
          dimension_rollup_option = "NoDimensionRollup"
        } }
        service = { pipelines = { metrics = { receivers = ["prometheus"], exporters = ["awsemf"] } } }
      })
    }]
    linuxParameters  = { capabilities = { add = [], drop = ["ALL"] }, initProcessEnabled = true }
    logConfiguration = local.log_configuration["metrics-collector"]
  }]

  # Both containers log to the service's group, each under its own stream prefix.
  log_configuration = { for c in ["control-plane", "metrics-collector"] : c => {
    logDriver = "awslogs"
    options = {
      awslogs-group         = var.log_group_name
      awslogs-region        = var.region
      awslogs-stream-prefix = c
    }
  } }

  secrets = {
    CP_API_TOKENS            = aws_secretsmanager_secret.api_tokens.arn
    CP_STORE__REDIS_PASSWORD = var.redis_auth_secret_arn
  }
}

# Bearer tokens of the API (tenant-bound), set out of band (docs/deploy.md); injected into
# the container by the execution role.
resource "aws_secretsmanager_secret" "api_tokens" {
  name_prefix             = "${var.name}/api-tokens-"
  description             = "Bearer tokens of the ${var.name} API, each bound to a tenant."
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = var.tags
}

# --- Roles ----------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = substr("${var.name}-exec-", 0, 38)
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${local.partition}:ecr:${var.region}:${local.account_id}:repository/*"]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${var.log_group_name}:*"]
  }

  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.api_tokens.arn, var.redis_auth_secret_arn]
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]
    content {
      sid       = "DecryptOwnSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-read-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name_prefix        = substr("${var.name}-task-", 0, 38)
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

# Exactly what the ECS runtime of the control plane needs, on this cluster only.
data "aws_iam_policy_document" "task" {
  statement {
    sid       = "RunWorkspaceTasks"
    actions   = ["ecs:RunTask"]
    resources = [local.workspace_family_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "ManageTasksInCluster"
    actions   = ["ecs:StopTask", "ecs:DescribeTasks"]
    resources = [local.cluster_tasks_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "ListTasksInCluster"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagTasksOnRunTask"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_tasks_arn]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "PassWorkspaceExecutionRoleOnly"
    actions   = ["iam:PassRole"]
    resources = [var.workspace_execution_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "WorkspaceBucketObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.bucket_arn}/*"]
  }

  statement {
    sid       = "WorkspaceBucketList"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  dynamic "statement" {
    for_each = var.metrics_collector_image == null ? [] : [var.metrics_log_group_name]
    content {
      sid       = "WriteMetricsAsEmf"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      resources = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${statement.value}:*"]
    }
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]
    content {
      sid       = "WorkspaceBucketKms"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "run-workspaces-and-sync"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- Task definition and service -------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  network_mode             = "awsvpc"
  requires_compatibilities = [var.launch_type]
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  volume {
    name = "spool"
  }

  dynamic "ephemeral_storage" {
    for_each = var.launch_type == "FARGATE" ? [local.ephemeral_storage_gib] : []
    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  container_definitions = jsonencode(concat([
    {
      name                   = "control-plane"
      image                  = var.image
      essential              = true
      user                   = var.container_user
      readonlyRootFilesystem = true
      mountPoints            = [{ sourceVolume = "spool", containerPath = local.spool_path, readOnly = false }]
      portMappings           = [{ containerPort = var.container_port, hostPort = var.container_port, protocol = "tcp" }]
      environment            = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      secrets                = [for k in sort(keys(local.secrets)) : { name = k, valueFrom = local.secrets[k] }]
      linuxParameters = {
        capabilities       = { add = [], drop = ["ALL"] }
        initProcessEnabled = true
      }
      logConfiguration = local.log_configuration["control-plane"]
    }
  ], local.collector))

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.metrics_collector_image == null || var.metrics_log_group_name != null
      error_message = "metrics_collector_image needs metrics_log_group_name (where the EMF records go)."
    }
  }
}

resource "aws_lb" "this" {
  name_prefix                = "cp-"
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.subnet_ids
  security_groups            = [var.alb_security_group_id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 3600 # SSE streams of long agent turns

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_lb_target_group" "this" {
  name_prefix          = "cp-"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 60

  health_check {
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

# The control plane serves /metrics outside the authenticated /v1 API, for the in-task
# collector: callers of the ALB get a 404 for it.
resource "aws_lb_listener_rule" "block_metrics" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 1

  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }

  action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "not found\n"
      status_code  = "404"
    }
  }

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = var.cluster_arn
  task_definition = aws_ecs_task_definition.this.arn
  desired_count   = var.desired_count
  launch_type     = var.launch_type

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = false
  availability_zone_rebalancing      = "ENABLED"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "control-plane"
    container_port   = var.container_port
  }

  tags = var.tags

  lifecycle {
    # desired_count belongs to the autoscaling policy. availability_zone_rebalancing is set
    # at creation only: ECS may report it differently for services created before the
    # setting existed, and moto does not return it at all (false drift in envs/moto).
    ignore_changes = [desired_count, availability_zone_rebalancing]
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_appautoscaling_target" "this" {
  count = var.enable_autoscaling ? 1 : 0

  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  count = var.enable_autoscaling ? 1 : 0

  name               = "${var.name}-cpu-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
