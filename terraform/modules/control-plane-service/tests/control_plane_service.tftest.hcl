mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/t-cp-role"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:loadbalancer/app/cp/1"
    }
  }
  mock_resource "aws_lb_listener" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:listener/app/cp/1/2"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/cp/1"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:t/api-tokens-AbC"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:111111111111:task-definition/t-cp:1"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  override_data {
    target = data.aws_caller_identity.current
    values = {
      account_id = "111111111111"
    }
  }

  override_data {
    target = data.aws_partition.current
    values = {
      partition = "aws"
    }
  }
}

variables {
  name                          = "t-cp"
  region                        = "us-east-1"
  cluster_arn                   = "arn:aws:ecs:us-east-1:111111111111:cluster/t"
  cluster_name                  = "t"
  image                         = "registry.example/control-plane:1"
  subnet_ids                    = ["subnet-a", "subnet-b"]
  vpc_id                        = "vpc-1"
  security_group_id             = "sg-cp"
  alb_security_group_id         = "sg-alb"
  certificate_arn               = "arn:aws:acm:us-east-1:111111111111:certificate/abc"
  log_group_name                = "/ecs/t/control-plane"
  workspace_task_definition_arn = "arn:aws:ecs:us-east-1:111111111111:task-definition/t-workspace:3"
  workspace_execution_role_arn  = "arn:aws:iam::111111111111:role/t-workspace-exec"
  workspace_subnet_ids          = ["subnet-a", "subnet-b"]
  workspace_security_group_id   = "sg-ws"
  workspace_capacity_provider   = "t-ec2"
  bucket_arn                    = "arn:aws:s3:::t-workspaces"
  bucket_name                   = "t-workspaces"
  redis_endpoint                = "master.t.cache.amazonaws.com"
  redis_auth_secret_arn         = "arn:aws:secretsmanager:us-east-1:111111111111:secret:t/redis-AbC"
}

run "task_role_is_exactly_what_the_runtime_needs" {
  command = apply

  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.task.statement : tolist(s.actions)])) == toset([
      "ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:ListTasks", "ecs:TagResource", "iam:PassRole",
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
    ])
    error_message = "The task role allows exactly RunTask/StopTask/DescribeTasks/ListTasks/TagResource, PassRole and the bucket."
  }

  assert {
    condition     = jsonencode([for s in data.aws_iam_policy_document.task.statement : tolist(s.resources) if contains(s.actions, "iam:PassRole")]) == jsonencode([["arn:aws:iam::111111111111:role/t-workspace-exec"]])
    error_message = "iam:PassRole only on the workspace execution role."
  }

  assert {
    condition     = jsonencode([for s in data.aws_iam_policy_document.task.statement : tolist(s.resources) if contains(s.actions, "ecs:RunTask")]) == jsonencode([["arn:aws:ecs:us-east-1:111111111111:task-definition/t-workspace:*"]])
    error_message = "RunTask only for the workspace family."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.task.statement :
      anytrue([for c in s.condition : c.variable == "ecs:cluster" && c.values == tolist(["arn:aws:ecs:us-east-1:111111111111:cluster/t"])])
    if length(setintersection(s.actions, ["ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:ListTasks"])) > 0])
    error_message = "Every ECS task action is conditioned on this cluster."
  }

  assert {
    condition     = jsonencode([for s in data.aws_iam_policy_document.task.statement : tolist(s.resources) if contains(s.actions, "ecs:StopTask")]) == jsonencode([["arn:aws:ecs:us-east-1:111111111111:task/t/*"]])
    error_message = "StopTask only on this cluster's tasks."
  }
}

run "internal_https_alb_fargate_autoscaling" {
  command = plan

  assert {
    condition     = aws_lb.this.internal && aws_lb.this.drop_invalid_header_fields
    error_message = "The ALB is internal and drops invalid headers."
  }

  assert {
    condition     = aws_lb_listener.https.protocol == "HTTPS" && aws_lb_listener.https.certificate_arn == "arn:aws:acm:us-east-1:111111111111:certificate/abc"
    error_message = "HTTPS listener with the given certificate."
  }

  assert {
    condition     = aws_ecs_service.this.launch_type == "FARGATE" && aws_ecs_service.this.network_configuration[0].assign_public_ip == false
    error_message = "Fargate, awsvpc, no public IP by default."
  }

  assert {
    condition     = aws_appautoscaling_policy.cpu[0].target_tracking_scaling_policy_configuration[0].target_value == 70
    error_message = "Autoscaling on CPU at 70 %."
  }
}

run "runs_as_non_root_read_only" {
  command = apply

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.this.container_definitions)[0].user == "10001:10001" &&
      jsondecode(aws_ecs_task_definition.this.container_definitions)[0].readonlyRootFilesystem
    )
    error_message = "The control plane runs as its image's uid 10001 with a read-only root."
  }

  assert {
    condition     = contains([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.value if e.name == "CP_ECS__TASK_DEFINITION"], "t-workspace:3")
    error_message = "The control plane is told which workspace task definition to run."
  }
}

# Sync spools export/restore tars to disk: with a read-only root the task needs a writable
# volume, and the control plane must be told to use it.
run "sync_spools_to_a_writable_volume" {
  command = apply

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.this.container_definitions)[0].mountPoints == [{ sourceVolume = "spool", containerPath = "/var/spool/control-plane", readOnly = false }] &&
      contains([for v in aws_ecs_task_definition.this.volume : v.name], "spool")
    )
    error_message = "The spool volume must be mounted writable at /var/spool/control-plane."
  }

  assert {
    condition = length(setsubtract(["CP_SYNC__SPOOL_DIR=/var/spool/control-plane", "TMPDIR=/var/spool/control-plane"],
    [for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : "${e.name}=${e.value}"])) == 0
    error_message = "The spool directory (and TMPDIR) must point at the volume."
  }

  assert {
    condition     = aws_ecs_task_definition.this.ephemeral_storage[0].size_in_gib >= 21
    error_message = "Fargate ephemeral storage sized for the concurrent syncs."
  }
}

run "metrics_not_reachable_through_the_alb" {
  command = plan

  assert {
    condition = (
      aws_lb_listener_rule.block_metrics.priority == 1 &&
      aws_lb_listener_rule.block_metrics.action[0].type == "fixed-response" &&
      aws_lb_listener_rule.block_metrics.action[0].fixed_response[0].status_code == "404" &&
      toset(flatten([for c in aws_lb_listener_rule.block_metrics.condition : [for p in c.path_pattern : p.values]])) == toset(["/metrics", "/metrics/*"])
    )
    error_message = "The ALB must answer /metrics itself (404), before forwarding anything."
  }
}

run "metrics_collector_writes_emf" {
  command = apply

  variables {
    metrics_collector_image = "111111111111.dkr.ecr.us-east-1.amazonaws.com/adot@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    metrics_log_group_name  = "/ecs/t/control-plane-metrics"
  }

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.this.container_definitions)[1].name == "metrics-collector" &&
      strcontains(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value, "127.0.0.1:8080")
    )
    error_message = "The collector scrapes the control plane on loopback."
  }

  assert {
    condition = jsonencode([for s in data.aws_iam_policy_document.task.statement : tolist(s.resources) if s.sid == "WriteMetricsAsEmf"]) == jsonencode([
      ["arn:aws:logs:us-east-1:111111111111:log-group:/ecs/t/control-plane-metrics:*"],
    ])
    error_message = "The task role writes only the metrics log group."
  }
}
