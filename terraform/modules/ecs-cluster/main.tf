data "aws_ssm_parameter" "ecs_ami" {
  count = var.ami_id == null ? 1 : 0

  name = var.ami_ssm_parameter
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.ecs_ami[0].value)

  user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", {
    cluster_name           = var.name
    image_pull_behavior    = var.image_pull_behavior
    container_stop_timeout = var.container_stop_timeout
    task_cleanup_wait      = var.task_cleanup_wait
    task_pids_limit        = var.task_pids_limit
    extra_ecs_config       = var.extra_ecs_config
  })
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = var.tags
}

# ENI trunking (awsvpcTrunking) is an account-wide setting: it is owned by the account
# baseline root module (terraform/account/), never by an environment, and read here as
# var.awsvpc_trunking. Hosts registered before it is enabled get no trunk ENI and, being
# scale-in protected, would never be replaced: the ASG refuses to plan without it.

# --- Instance role ---------------------------------------------------------------------------

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name_prefix        = substr("${var.name}-instance-", 0, 38)
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json

  tags = var.tags
}

data "aws_partition" "current" {}

resource "aws_iam_role_policy_attachment" "instance_ecs" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_role_policy_attachment" "instance_ssm" {
  count = var.enable_ssm_session_manager ? 1 : 0

  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = substr("${var.name}-instance-", 0, 38)
  role        = aws_iam_role.instance.name

  tags = var.tags
}

# --- Launch template -------------------------------------------------------------------------

resource "aws_launch_template" "this" {
  name_prefix            = "${var.name}-"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = var.instance_security_group_ids
  user_data              = base64encode(local.user_data)
  update_default_version = true
  ebs_optimized          = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only, and a hop limit of 1 so that nothing behind a bridge or NAT on the host
  # (containers) can reach the instance's metadata and its role credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-host" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-host" })
  }

  lifecycle {
    # The stock ECS AMI lacks the host hardening of ami/ (seccomp default, no-new-privileges,
    # IMDS iptables): an environment that requires the Packer AMI refuses to plan without it.
    precondition {
      condition     = !var.require_custom_ami || var.ami_id != null
      error_message = "ami_id is required (the Packer-built workspace host AMI, docs/deploy.md step 1): this environment does not fall back to the stock ECS-optimized AMI."
    }
  }
}

# --- Auto Scaling group with an EC2 warm pool -------------------------------------------------

resource "aws_autoscaling_group" "this" {
  name_prefix           = "${var.name}-"
  vpc_zone_identifier   = var.subnet_ids
  min_size              = var.min_size
  max_size              = var.max_size
  desired_capacity      = var.min_size
  health_check_type     = "EC2"
  protect_from_scale_in = true # required by the capacity provider's managed termination protection

  # Hosts are cattle: on destroy, terminate them (and the warm pool) instead of waiting for
  # scale-in-protected instances to drain, which never happens once the cluster is gone.
  force_delete           = true
  force_delete_warm_pool = true

  # Group metrics, among them the warm pool's (the monitoring module alarms when it is empty).
  metrics_granularity = "1Minute"
  enabled_metrics = [
    "GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances", "GroupTerminatingInstances",
    "WarmPoolDesiredCapacity", "WarmPoolWarmedCapacity", "WarmPoolPendingCapacity", "WarmPoolTotalCapacity",
  ]

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  warm_pool {
    pool_state                  = "Stopped"
    min_size                    = var.warm_pool_min_size
    max_group_prepared_capacity = var.warm_pool_max_prepared != null ? var.warm_pool_max_prepared : var.max_size

    instance_reuse_policy {
      reuse_on_scale_in = true
    }
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # A new launch template version (new AMI, new user data) rolls the hosts: one at a time,
  # never below the current capacity (new hosts first), scale-in protected hosts included;
  # the capacity provider's managed draining moves their tasks off before termination.
  # Warm-pool instances are replaced too. docs/deploy.md has the runbook.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage       = 100
      max_healthy_percentage       = 200
      instance_warmup              = var.instance_warmup_seconds
      scale_in_protected_instances = "Refresh"
      standby_instances            = "Terminate"
      skip_matching                = true
      auto_rollback                = false
    }
  }

  lifecycle {
    # The capacity provider owns the desired capacity once the group exists.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = !var.require_awsvpc_trunking || var.awsvpc_trunking == "enabled"
      error_message = "awsvpcTrunking is not enabled for the account (account baseline reports ${coalesce(var.awsvpc_trunking, "nothing")}): apply terraform/account first (docs/deploy.md). Hosts registered without it never get a trunk ENI."
    }
  }
}

resource "aws_ecs_capacity_provider" "this" {
  name = "${var.name}-ec2"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.this.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = var.target_capacity
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = 4
      instance_warmup_period    = 60
    }
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = [aws_ecs_capacity_provider.this.name]

  default_capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.this.name
    weight            = 1
    base              = 0
  }
}
