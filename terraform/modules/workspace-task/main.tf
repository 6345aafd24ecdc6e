# Workspace task definition: the agent container and the egress proxy sidecar share the
# task's network namespace (awsvpc). The agent listens on the task ENI (port 9000, reached
# only by the control plane's security group); the sidecar listens on 127.0.0.1 only and
# is the agent's only way out (HTTP(S)_PROXY and the Bedrock gateway base URL).
#
# No task role. ECS would expose a task role's credentials to every container of the task
# (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on 169.254.170.2), i.e. to the sandbox. The
# sidecar's Bedrock signing keys instead reach only the sidecar container, as secrets the
# execution role reads at task start: the agent container neither sees nor can fetch them.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  proxy_port = tonumber(split(":", var.proxy_listen)[1])
  proxy_url  = "http://${var.proxy_listen}"

  # Secret ARNs referenced by the proxy (without the ":json-key:version-stage:version-id" suffix).
  proxy_secret_arns = distinct(concat(
    [aws_secretsmanager_secret.bedrock_credentials.arn],
    [for v in values(var.proxy_secrets) : join(":", slice(split(":", v), 0, 7))],
  ))

  agent_environment = merge(var.agent_environment, {
    WORKSPACE_AGENT_LISTEN       = "tcp:0.0.0.0:${var.agent_port}"
    WORKSPACE_AGENT_RELAY_LISTEN = "off"
    HTTP_PROXY                   = local.proxy_url
    HTTPS_PROXY                  = local.proxy_url
    http_proxy                   = local.proxy_url
    https_proxy                  = local.proxy_url
    NO_PROXY                     = "127.0.0.1,localhost"
    no_proxy                     = "127.0.0.1,localhost"
    # Claude Code on Bedrock through the sidecar's gateway, without credentials
    # (the same variables as the local runtime's control-plane/src/runtime/agent_env.rs).
    AWS_REGION                               = var.region
    ANTHROPIC_BEDROCK_BASE_URL               = local.proxy_url
    CLAUDE_CODE_USE_BEDROCK                  = "1"
    CLAUDE_CODE_SKIP_BEDROCK_AUTH            = "1"
    DISABLE_AUTOUPDATER                      = "1"
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1"
    HOME                                     = "/home/appuser"
  })

  proxy_environment = merge(
    length(var.proxy_allow) == 0 ? {} : { PROXY_ALLOW = join(",", var.proxy_allow) },
    var.proxy_environment,
    {
      PROXY_LISTEN         = var.proxy_listen
      PROXY_ADMIN_LISTEN   = var.proxy_admin_listen
      PROXY_BEDROCK_REGION = var.region
      # With the bedrock-runtime endpoint's private DNS the Bedrock host resolves to VPC
      # addresses, which the sidecar's address guard refuses unless told otherwise; the
      # signer's key works only through that endpoint (aws:SourceVpce).
      PROXY_BEDROCK_ALLOW_PRIVATE = "true"
      PROXY_LOG_FORMAT            = "json"
      PROXY_AUDIT                 = "stdout"
      AWS_REGION                  = var.region
    },
  )

  proxy_secrets = merge(var.proxy_secrets, {
    AWS_ACCESS_KEY_ID     = "${aws_secretsmanager_secret.bedrock_credentials.arn}:AWS_ACCESS_KEY_ID::"
    AWS_SECRET_ACCESS_KEY = "${aws_secretsmanager_secret.bedrock_credentials.arn}:AWS_SECRET_ACCESS_KEY::"
  })

  # Common to both containers. Each has its own uid: the sidecar holds the Bedrock signer's
  # key in its environment, and a process of the sandbox's uid could read another process
  # of the same uid (/proc/<pid>/environ) if the task's PID namespace were ever shared.
  hardening = {
    readonlyRootFilesystem = true
    privileged             = false
    dockerSecurityOptions  = ["no-new-privileges"]
  }

  container_definitions = [
    merge(local.hardening, {
      name      = "agent"
      user      = var.agent_user
      image     = var.agent_image
      essential = true
      cpu       = var.agent_cpu
      memory    = var.agent_memory

      memoryReservation = var.agent_memory_reservation
      portMappings      = [{ containerPort = var.agent_port, hostPort = var.agent_port, protocol = "tcp" }]
      environment       = [for k in sort(keys(local.agent_environment)) : { name = k, value = local.agent_environment[k] }]
      dependsOn         = [{ containerName = "proxy", condition = "HEALTHY" }]
      ulimits           = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

      linuxParameters = {
        capabilities       = { add = [], drop = ["ALL"] }
        initProcessEnabled = true
        maxSwap            = 0
        swappiness         = 0
        tmpfs              = [for t in var.agent_tmpfs : { containerPath = t.path, size = t.size, mountOptions = t.options }]
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.agent_log_group_name
          awslogs-region        = var.region
          awslogs-stream-prefix = "agent"
        }
      }
    }),
    merge(local.hardening, {
      name      = "proxy"
      user      = var.proxy_user
      image     = var.proxy_image
      essential = true
      cpu       = var.proxy_cpu
      memory    = var.proxy_memory

      memoryReservation = var.proxy_memory_reservation
      environment       = [for k in sort(keys(local.proxy_environment)) : { name = k, value = local.proxy_environment[k] }]
      secrets           = [for k in sort(keys(local.proxy_secrets)) : { name = k, valueFrom = local.proxy_secrets[k] }]

      healthCheck = {
        command     = ["CMD", "/usr/local/bin/proxy-sidecar", "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 5
      }

      linuxParameters = {
        capabilities       = { add = [], drop = ["ALL"] }
        initProcessEnabled = true
        maxSwap            = 0
        swappiness         = 0
        tmpfs              = [for t in var.proxy_tmpfs : { containerPath = t.path, size = t.size, mountOptions = t.options }]
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.proxy_log_group_name
          awslogs-region        = var.region
          awslogs-stream-prefix = "proxy"
        }
      }
    }),
  ]
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  network_mode             = "awsvpc"
  requires_compatibilities = ["EC2"]
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.agent_memory + var.proxy_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  # task_role_arn is deliberately not set: see the comment at the top of this file.
  container_definitions = jsonencode(local.container_definitions)

  tags = var.tags
}

# --- Sidecar signing identity -----------------------------------------------------------------
# A dedicated IAM user whose only permission is to invoke the listed Bedrock models, and only
# through the VPC's bedrock-runtime endpoint. Its access key is created out of band and stored
# in the secret below (docs/deploy.md); Terraform never sees the key material.

resource "aws_secretsmanager_secret" "bedrock_credentials" {
  name_prefix             = "${var.name}/proxy/bedrock-credentials-"
  description             = "Access key of ${var.name}-bedrock-signer as JSON {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY}; read only by the workspace execution role, injected only into the proxy sidecar."
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = var.tags
}

resource "aws_iam_user" "bedrock_signer" {
  name = "${var.name}-bedrock-signer"
  path = "/workspace/"

  # The access key is created out of band (docs/deploy.md); without force_destroy, destroy
  # fails with DeleteConflict until someone deletes the key by hand.
  force_destroy = var.signer_force_destroy

  tags = var.tags
}

resource "aws_iam_group" "bedrock_signer" {
  name = "${var.name}-bedrock-signer"
  path = "/workspace/"
}

resource "aws_iam_group_membership" "bedrock_signer" {
  name  = "${var.name}-bedrock-signer"
  group = aws_iam_group.bedrock_signer.name
  users = [aws_iam_user.bedrock_signer.name]
}

data "aws_iam_policy_document" "bedrock_invoke" {
  statement {
    sid = "InvokeListedModels"
    actions = [
      "bedrock:InvokeModel",
      "bedrock:InvokeModelWithResponseStream",
    ]
    resources = var.bedrock_model_arns

    dynamic "condition" {
      for_each = var.bedrock_vpc_endpoint_id == null ? [] : [var.bedrock_vpc_endpoint_id]
      content {
        test     = "StringEquals"
        variable = "aws:SourceVpce"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_group_policy" "bedrock_invoke" {
  name   = "invoke-bedrock-models"
  group  = aws_iam_group.bedrock_signer.name
  policy = data.aws_iam_policy_document.bedrock_invoke.json
}

# --- Execution role ---------------------------------------------------------------------------
# Used by the ECS agent only: pull the two images, write the two log groups, read the proxy's
# secrets. It is the role the control plane may pass to RunTask.

data "aws_iam_policy_document" "execution_assume" {
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
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPull"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchGetImage",
    ]
    resources = ["arn:${local.partition}:ecr:${var.region}:${local.account_id}:repository/*"]
  }

  statement {
    sid     = "WriteTaskLogs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${var.agent_log_group_name}:*",
      "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${var.proxy_log_group_name}:*",
    ]
  }

  statement {
    sid       = "ReadProxySecretsOnly"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.proxy_secret_arns
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]
    content {
      sid       = "DecryptProxySecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-read-proxy-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
