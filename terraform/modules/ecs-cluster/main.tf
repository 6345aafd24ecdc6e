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

# ENI trunking is an account setting (the seeds' ECS_ENABLE_TASK_ENI_TRUNKING agent
# variable does not exist). It raises the number of awsvpc tasks per instance.
resource "aws_ecs_account_setting_default" "trunking" {
  count = var.manage_account_settings ? 1 : 0

  name  = "awsvpcTrunking"
  value = "enabled"
}

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

  lifecycle {
    # The capacity provider owns the desired capacity once the group exists.
    ignore_changes = [desired_capacity]
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
