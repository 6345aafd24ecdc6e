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

variable "require_awsvpc_trunking" {
  description = "Refuse to create the hosts unless the account baseline (terraform/account) reports awsvpcTrunking = enabled (off only in envs/moto: moto lacks PutAccountSettingDefault)."
  type        = bool
  default     = true
}

variable "account_baseline_parameter_prefix" {
  description = "SSM path where terraform/account publishes the account settings."
  type        = string
  default     = "/workspaces/account-baseline"
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

variable "signer_force_destroy" {
  description = "terraform destroy also deletes the Bedrock signer's out-of-band access key (off only in envs/moto: moto lacks iam:ListServiceSpecificCredentials)."
  type        = bool
  default     = true
}

# --- Network -----------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC: distinct per environment (so that they can ever be peered or share a transit gateway)."
  type        = string
}

variable "azs" {
  description = "The two availability zones of the environment (null: the region's first two available zones)."
  type        = list(string)
  default     = null
}

variable "allowed_domains" {
  description = "External domains the workspaces may use (pypi, npm...): resolvable through the DNS Firewall besides the AWS names the estate needs, and resolved into the egress prefix list by the egress-sync Lambda."
  type        = list(string)

  validation {
    condition     = !anytrue([for d in var.allowed_domains : endswith(d, "amazonaws.com")])
    error_message = "allowed_domains lists external names only: the AWS names the estate needs are derived from the region (composition/main.tf, local.aws_domains)."
  }
}

variable "egress_prefix_list_max_entries" {
  description = "max_entries of the workspace egress prefix list; counted at this weight against the workspace security group's rule quota."
  type        = number
  default     = 50
}

variable "rules_per_security_group" {
  description = "The account's quota of rules per security group and direction (Service Quotas L-0EA8095F; 60 unless raised)."
  type        = number
  default     = 60
}

variable "dns_firewall_mutation_protection" {
  description = "Protect the DNS Firewall's VPC association (set false, and apply, before terraform destroy)."
  type        = bool
  default     = true
}

variable "enable_resolver_query_logging" {
  description = "Log the VPC's DNS queries (with the DNS Firewall's verdicts)."
  type        = bool
  default     = true
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
  description = "Packer-built workspace host AMI (docs/deploy.md step 1). Required: an environment never falls back to the stock ECS AMI, which lacks the ami/ hardening."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be the Packer-built AMI's id (ami-...)."
  }
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
  description = "Stopped, pre-initialized hosts kept in the EC2 warm pool (per environment: staging 1, production 2)."
  type        = number
}

variable "workspaces_per_host" {
  description = "Workspace tasks one host holds (memory-bound: (instance memory - ~1 GiB) / 2.3 GiB); sizes the capacity alarm."
  type        = number
}

# --- Images --------------------------------------------------------------------------------------

variable "images" {
  description = "The estate's images, each pinned by digest (<repository>@sha256:<digest>, from the account's ECR): agent (workspace), proxy (sidecar), control_plane, metrics_collector (ADOT collector scraping the control plane's /metrics into CloudWatch EMF)."
  type = object({
    agent             = string
    proxy             = string
    control_plane     = string
    metrics_collector = string
  })

  validation {
    condition     = alltrue([for k, i in var.images : can(regex("^[^@:]+(:[0-9]+)?/[^@]+@sha256:[0-9a-f]{64}$", i))])
    error_message = "Every image must be pinned by digest (<repository>@sha256:<digest>): a tag can be repointed."
  }
}

# --- Workspace task ----------------------------------------------------------------------------

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
