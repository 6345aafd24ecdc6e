# Inputs of an environment. This file is identical in envs/staging, envs/production and
# envs/moto (tests/infra/run.sh checks it); each environment sets its values in
# terraform.tfvars.

variable "name" {
  description = "Environment name, the prefix of every resource (e.g. ws-staging)."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "disposable" {
  description = "A throw-away environment (tests): buckets force-destroyed, secrets deleted without recovery window, no ALB deletion protection."
  type        = bool
  default     = false
}

# --- Features that an emulator may lack --------------------------------------------------------

variable "enable_dns_firewall" {
  description = "Create the Route 53 Resolver DNS Firewall (off only in envs/moto: moto has no such API)."
  type        = bool
  default     = true
}

variable "manage_account_settings" {
  description = "Set the ECS account default awsvpcTrunking=enabled (off only in envs/moto: moto lacks PutAccountSettingDefault)."
  type        = bool
  default     = true
}

variable "enable_service_autoscaling" {
  description = "Target-tracking autoscaling of the control-plane service (off only in envs/moto: moto lacks Application Auto Scaling's ListTagsForResource)."
  type        = bool
  default     = true
}

variable "enable_redis_replication_group" {
  description = "Create the ElastiCache replication group (off only in envs/moto: moto's replication groups lose member clusters and settings on read)."
  type        = bool
  default     = true
}

# --- Network -----------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"
}

variable "azs" {
  description = "The two availability zones of the environment."
  type        = list(string)
}

variable "allowed_domains" {
  description = "Domains resolvable from the VPC (DNS Firewall) and resolved into the egress prefix list by the egress-sync Lambda."
  type        = list(string)
}

variable "alb_ingress_cidr_blocks" {
  description = "CIDRs of the backend that calls the control plane."
  type        = list(string)
  default     = []
}

variable "alb_ingress_security_group_ids" {
  description = "Security groups of the backend that calls the control plane."
  type        = list(string)
  default     = []
}

# --- Workspace hosts ---------------------------------------------------------------------------

variable "ami_id" {
  description = "Packer-built workspace host AMI (null: the stock ECS-optimized AL2023 AMI, without the ami/ hardening)."
  type        = string
  default     = null
}

variable "instance_type" {
  description = "Instance type of the workspace hosts."
  type        = string
}

variable "asg_min_size" {
  description = "Minimum in-service workspace hosts."
  type        = number
}

variable "asg_max_size" {
  description = "Maximum in-service workspace hosts."
  type        = number
}

variable "warm_pool_min_size" {
  description = "Stopped, pre-initialized hosts kept in the EC2 warm pool."
  type        = number
  default     = 1
}

# --- Workspace task ----------------------------------------------------------------------------

variable "agent_image" {
  description = "Workspace (agent) image."
  type        = string
}

variable "proxy_image" {
  description = "Proxy sidecar image."
  type        = string
}

variable "proxy_allow" {
  description = "Hosts the proxy sidecar lets workspaces reach besides Bedrock (exact hosts or *.domain); resolvable names must also be in allowed_domains."
  type        = list(string)
  default     = ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
}

variable "proxy_environment" {
  description = "Extra environment of the proxy sidecar (allowlist, MCP routes...)."
  type        = map(string)
  default     = {}
}

variable "proxy_secrets" {
  description = "Extra secrets of the proxy sidecar (env name => Secrets Manager ARN), e.g. MCP tokens."
  type        = map(string)
  default     = {}
}

variable "bedrock_model_arns" {
  description = "Bedrock model / inference-profile ARNs the sidecar may invoke."
  type        = list(string)
}

# --- Control plane -----------------------------------------------------------------------------

variable "control_plane_image" {
  description = "Control-plane image."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the internal ALB's HTTPS listener."
  type        = string
}

variable "control_plane_launch_type" {
  description = "FARGATE (default) or EC2."
  type        = string
  default     = "FARGATE"
}

variable "control_plane_cpu" {
  description = "Control-plane task CPU units."
  type        = number
  default     = 2048
}

variable "control_plane_memory" {
  description = "Control-plane task memory (MiB)."
  type        = number
  default     = 4096
}

variable "control_plane_min_count" {
  description = "Minimum control-plane tasks."
  type        = number
}

variable "control_plane_max_count" {
  description = "Maximum control-plane tasks."
  type        = number
}

# --- Redis -------------------------------------------------------------------------------------

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes (primary + replicas)."
  type        = number
}

variable "redis_multi_az" {
  description = "Multi-AZ with automatic failover."
  type        = bool
}

# --- Storage -----------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the workspace bucket (globally unique)."
  type        = string
}

# --- Lambdas -----------------------------------------------------------------------------------

variable "gc_zip_path" {
  description = "Zip of the GC Lambda (cargo lambda build --release --output-format zip)."
  type        = string
}

variable "warm_pool_zip_path" {
  description = "Zip of the warm-pool top-up Lambda."
  type        = string
}

variable "egress_sync_zip_path" {
  description = "Zip of the egress-sync Lambda."
  type        = string
}

variable "lambda_architecture" {
  description = "Architecture the Lambda zips were built for (x86_64 or arm64)."
  type        = string
  default     = "arm64"
}

variable "gc_schedule" {
  description = "Schedule of the GC Lambda."
  type        = string
  default     = "rate(1 minute)"
}

variable "warm_pool_schedule" {
  description = "Schedule of the warm-pool top-up Lambda."
  type        = string
  default     = "rate(1 minute)"
}

variable "egress_sync_schedule" {
  description = "Schedule of the egress-sync Lambda."
  type        = string
  default     = "rate(5 minutes)"
}

# --- Monitoring --------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of every log group (days)."
  type        = number
  default     = 365
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []
}
