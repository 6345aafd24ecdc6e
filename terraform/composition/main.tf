# The whole ECS-on-EC2 estate of one environment. This file is identical in envs/staging,
# envs/production and envs/moto (tests/infra/run.sh checks it), so the moto run exercises
# exactly the composition that is deployed; environments differ only in terraform.tfvars
# and providers.tf.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  tags       = merge({ Environment = var.name, ManagedBy = "terraform" }, var.tags)

  recovery_window_days = var.disposable ? 0 : 30

  # Names the VPC needs resolved besides the external allowed_domains: the regional AWS
  # endpoints (a wildcard, because the ECS agent's poll and telemetry endpoints are sharded,
  # ecs-a-N / ecs-t-N, and DNS Firewall allows a wildcard only as the leftmost label),
  # ElastiCache endpoints, S3's global names (presigned ECR layer URLs may use them), the
  # global STS name and EC2's private host names. Every name below is answered by AWS's own
  # authoritative servers, so none can carry data out.
  aws_domains = [
    "*.${var.region}.amazonaws.com",
    "*.cache.amazonaws.com",
    "*.s3.amazonaws.com",
    "sts.amazonaws.com",
    var.region == "us-east-1" ? "*.ec2.internal" : "*.${var.region}.compute.internal",
  ]
}

# Account-wide settings come from the account baseline (terraform/account), applied first.
# Reading its parameter fails the plan if the baseline was never applied; it is read again
# on every plan, so the ASG's precondition (modules/ecs-cluster) notices a setting switched
# off later. (No `check` block: its nested data source would make every plan non-empty.)
data "aws_ssm_parameter" "awsvpc_trunking" {
  name = "${var.account_baseline_parameter_prefix}/ecs/awsvpcTrunking"
}


module "monitoring" {
  source = "../../modules/monitoring"

  name                     = var.name
  log_retention_days       = var.log_retention_days
  kms_deletion_window_days = var.disposable ? 7 : 30
  alarm_emails             = var.alarm_emails
  cluster_name             = module.ecs_cluster.cluster_name
  capacity_provider_name   = module.ecs_cluster.capacity_provider_name
  autoscaling_group_name   = module.ecs_cluster.autoscaling_group_name
  workspace_task_capacity  = var.asg_max_size * var.workspaces_per_host

  alb_arn_suffix                = module.control_plane.alb_arn_suffix
  target_group_arn_suffix       = module.control_plane.target_group_arn_suffix
  nat_gateway_ids               = module.network.nat_gateway_ids
  redis_replication_group_id    = module.redis.replication_group_id
  redis_num_cache_clusters      = var.enable_redis_replication_group ? var.redis_num_cache_clusters : 0
  resolver_query_log_group_name = module.network.resolver_query_log_group_name
  lambda_function_names = {
    gc          = module.lambda_gc.function_name
    warm-pool   = module.lambda_warm_pool.function_name
    egress-sync = module.lambda_egress_sync.function_name
  }

  tags = local.tags
}

module "network" {
  source = "../../modules/network"

  name                       = var.name
  cidr_block                 = var.vpc_cidr
  azs                        = var.azs
  flow_log_retention_days    = var.log_retention_days
  kms_key_arn                = module.monitoring.kms_key_arn
  endpoint_security_group_id = module.security_groups.endpoints_security_group_id

  bedrock_endpoint_security_group_id = module.security_groups.bedrock_endpoint_security_group_id
  s3_bucket_arns                     = [module.storage.bucket_arn]
  enable_resolver_query_logging      = var.enable_resolver_query_logging

  tags = local.tags
}

module "dns_firewall" {
  source = "../../modules/dns-firewall"

  name            = var.name
  vpc_id          = module.network.vpc_id
  enabled         = var.enable_dns_firewall
  allowed_domains = concat(local.aws_domains, var.allowed_domains)

  egress_prefix_list_max_entries = var.egress_prefix_list_max_entries
  mutation_protection            = var.dns_firewall_mutation_protection

  tags = local.tags
}

module "security_groups" {
  source = "../../modules/security-groups"

  name                           = var.name
  vpc_id                         = module.network.vpc_id
  alb_ingress_cidr_blocks        = var.alb_ingress_cidr_blocks
  alb_ingress_security_group_ids = var.alb_ingress_security_group_ids
  s3_prefix_list_id              = module.network.s3_endpoint_prefix_list_id
  egress_prefix_list_id          = module.dns_firewall.egress_prefix_list_id
  egress_prefix_list_max_entries = module.dns_firewall.egress_prefix_list_max_entries
  rules_per_security_group       = var.rules_per_security_group

  tags = local.tags
}

module "ecs_cluster" {
  source = "../../modules/ecs-cluster"

  name                        = var.name
  subnet_ids                  = module.network.private_subnet_ids
  instance_security_group_ids = [module.security_groups.instance_security_group_id]
  ami_id                      = var.ami_id
  instance_type               = var.instance_type
  min_size                    = var.asg_min_size
  max_size                    = var.asg_max_size
  warm_pool_min_size          = var.warm_pool_min_size
  awsvpc_trunking             = data.aws_ssm_parameter.awsvpc_trunking.insecure_value
  require_awsvpc_trunking     = var.require_awsvpc_trunking

  tags = local.tags
}

module "workspace_task" {
  source = "../../modules/workspace-task"

  name                        = "${var.name}-workspace"
  region                      = var.region
  agent_image                 = var.images.agent
  proxy_image                 = var.images.proxy
  proxy_allow                 = var.proxy_allow
  proxy_environment           = var.proxy_environment
  proxy_secrets               = var.proxy_secrets
  secrets_kms_key_arn         = module.monitoring.kms_key_arn
  agent_log_group_name        = module.monitoring.log_group_names["workspace_agent"]
  proxy_log_group_name        = module.monitoring.log_group_names["workspace_proxy"]
  bedrock_model_arns          = var.bedrock_model_arns
  bedrock_vpc_endpoint_id     = try(module.network.interface_endpoint_ids["bedrock-runtime"], null)
  secret_recovery_window_days = local.recovery_window_days
  signer_force_destroy        = var.signer_force_destroy

  tags = local.tags
}

module "storage" {
  source = "../../modules/storage"

  bucket_name   = var.bucket_name
  kms_key_arn   = module.monitoring.kms_key_arn
  force_destroy = var.disposable

  tags = local.tags
}

module "redis" {
  source = "../../modules/redis"

  name                        = "${var.name}-state"
  create_replication_group    = var.enable_redis_replication_group
  subnet_ids                  = module.network.private_subnet_ids
  security_group_ids          = [module.security_groups.redis_security_group_id]
  node_type                   = var.redis_node_type
  num_cache_clusters          = var.redis_num_cache_clusters
  multi_az                    = var.redis_multi_az
  kms_key_arn                 = module.monitoring.kms_key_arn
  secret_recovery_window_days = local.recovery_window_days

  tags = local.tags
}

module "control_plane" {
  source = "../../modules/control-plane-service"

  name                          = "${var.name}-control-plane"
  region                        = var.region
  cluster_arn                   = module.ecs_cluster.cluster_arn
  cluster_name                  = module.ecs_cluster.cluster_name
  image                         = var.images.control_plane
  launch_type                   = var.control_plane_launch_type
  cpu                           = var.control_plane_cpu
  memory                        = var.control_plane_memory
  desired_count                 = var.control_plane_min_count
  min_count                     = var.control_plane_min_count
  max_count                     = var.control_plane_max_count
  enable_autoscaling            = var.enable_service_autoscaling
  vpc_id                        = module.network.vpc_id
  subnet_ids                    = module.network.private_subnet_ids
  security_group_id             = module.security_groups.control_plane_security_group_id
  alb_security_group_id         = module.security_groups.alb_security_group_id
  certificate_arn               = var.certificate_arn
  alb_deletion_protection       = !var.disposable
  log_group_name                = module.monitoring.log_group_names["control_plane"]
  workspace_task_definition_arn = module.workspace_task.task_definition_arn
  workspace_execution_role_arn  = module.workspace_task.execution_role_arn
  workspace_subnet_ids          = module.network.private_subnet_ids
  workspace_security_group_id   = module.security_groups.workspace_security_group_id
  workspace_capacity_provider   = module.ecs_cluster.capacity_provider_name
  bucket_arn                    = module.storage.bucket_arn
  bucket_name                   = module.storage.bucket_name
  bucket_kms_key_arn            = module.monitoring.kms_key_arn
  redis_endpoint                = module.redis.primary_endpoint
  redis_auth_secret_arn         = module.redis.auth_secret_arn
  secrets_kms_key_arn           = module.monitoring.kms_key_arn
  secret_recovery_window_days   = local.recovery_window_days
  metrics_collector_image       = var.images.metrics_collector
  metrics_log_group_name        = module.monitoring.log_group_names["control_plane_metrics"]
  metrics_namespace             = module.monitoring.control_plane_metrics_namespace

  tags = local.tags
}

# --- Scheduled Lambdas ---------------------------------------------------------------------------
# Thin mains over the control-plane library; they read the same CP_* settings.

locals {
  cluster_tasks_arn    = "arn:${local.partition}:ecs:${var.region}:${local.account_id}:task/${module.ecs_cluster.cluster_name}/*"
  workspace_family_arn = "arn:${local.partition}:ecs:${var.region}:${local.account_id}:task-definition/${module.workspace_task.task_definition_family}:*"

  lambda_redis_environment = module.redis.primary_endpoint == null ? {} : {
    CP_STORE__KIND      = "redis"
    CP_STORE__REDIS_URL = "rediss://${module.redis.primary_endpoint}:6379"
  }

  lambda_common_environment = merge(local.lambda_redis_environment, {
    CP_FLEET                            = "${var.name}-control-plane"
    CP_ECS__CLUSTER                     = module.ecs_cluster.cluster_name
    CP_ECS__TASK_DEFINITION             = module.workspace_task.task_definition_family
    CP_ECS__SUBNETS                     = join(",", module.network.private_subnet_ids)
    CP_ECS__SECURITY_GROUPS             = module.security_groups.workspace_security_group_id
    CP_ECS__CAPACITY_PROVIDER           = module.ecs_cluster.capacity_provider_name
    CP_STORE__REDIS_PASSWORD_SECRET_ARN = module.redis.auth_secret_arn
  })
}

data "aws_iam_policy_document" "lambda_gc" {
  statement {
    sid       = "ListTasksInCluster"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [module.ecs_cluster.cluster_arn]
    }
  }
  statement {
    sid       = "DescribeAndStopTasksInCluster"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_tasks_arn]
  }
  statement {
    sid       = "ReadRedisAuthToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.redis.auth_secret_arn]
  }
  dynamic "statement" {
    for_each = module.monitoring.kms_key_arn == null ? [] : [module.monitoring.kms_key_arn]
    content {
      sid       = "DecryptRedisAuthToken"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "lambda_warm_pool" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_gc.json]

  statement {
    sid       = "RunWorkspaceTasks"
    actions   = ["ecs:RunTask"]
    resources = [local.workspace_family_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [module.ecs_cluster.cluster_arn]
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
    resources = [module.workspace_task.execution_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "lambda_egress_sync" {
  statement {
    sid       = "ReadPrefixLists"
    actions   = ["ec2:DescribeManagedPrefixLists"]
    resources = ["*"]
  }
  statement {
    sid       = "MaintainTheEgressPrefixList"
    actions   = ["ec2:GetManagedPrefixListEntries", "ec2:ModifyManagedPrefixList"]
    resources = [module.dns_firewall.egress_prefix_list_arn]
  }
}

module "lambda_gc" {
  source = "../../modules/scheduled-lambda"

  name                = "${var.name}-gc"
  description         = "Destroys idle and expired workspaces"
  zip_path            = var.gc_zip_path
  architecture        = var.lambda_architecture
  schedule_expression = var.gc_schedule
  environment         = local.lambda_common_environment
  policy_json         = data.aws_iam_policy_document.lambda_gc.json
  subnet_ids          = module.network.private_subnet_ids
  security_group_ids  = [module.security_groups.lambda_security_group_id]
  log_retention_days  = var.log_retention_days
  kms_key_arn         = module.monitoring.kms_key_arn

  tags = local.tags
}

module "lambda_warm_pool" {
  source = "../../modules/scheduled-lambda"

  name                = "${var.name}-warm-pool"
  description         = "Tops up the pool of pre-started workspace tasks"
  zip_path            = var.warm_pool_zip_path
  architecture        = var.lambda_architecture
  schedule_expression = var.warm_pool_schedule
  timeout             = 120
  environment         = local.lambda_common_environment
  policy_json         = data.aws_iam_policy_document.lambda_warm_pool.json
  subnet_ids          = module.network.private_subnet_ids
  security_group_ids  = [module.security_groups.lambda_security_group_id]
  log_retention_days  = var.log_retention_days
  kms_key_arn         = module.monitoring.kms_key_arn

  tags = local.tags
}

module "lambda_egress_sync" {
  source = "../../modules/scheduled-lambda"

  name                = "${var.name}-egress-sync"
  description         = "Resolves the allowed domains into the workspace egress prefix list"
  zip_path            = var.egress_sync_zip_path
  architecture        = var.lambda_architecture
  schedule_expression = var.egress_sync_schedule
  environment = {
    EGRESS_SYNC_PREFIX_LIST_ID = module.dns_firewall.egress_prefix_list_id
    EGRESS_SYNC_DOMAINS        = join(",", var.allowed_domains)
  }
  policy_json        = data.aws_iam_policy_document.lambda_egress_sync.json
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.monitoring.kms_key_arn

  tags = local.tags
}
