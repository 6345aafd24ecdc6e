variable "name" {
  description = "Name prefix for every resource of the network."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"
}

variable "azs" {
  description = "The two availability zones of the subnets (null: the first two of the region's available zones, sorted by name)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.azs == null || try(length(var.azs) == 2 && length(distinct(var.azs)) == 2, false)
    error_message = "azs must name exactly two distinct availability zones."
  }
}

variable "public_subnet_newbits" {
  description = "Bits added to the VPC prefix for each public subnet (a /16 VPC with 8 gives /24 subnets)."
  type        = number
  default     = 8
}

variable "private_subnet_newbits" {
  description = "Bits added to the VPC prefix for each private subnet (a /16 VPC with 4 gives /20 subnets, room for many task ENIs)."
  type        = number
  default     = 4
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 365
}

variable "flow_log_traffic_type" {
  description = "Traffic recorded by the flow log: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the flow log group (null: CloudWatch Logs' default encryption)."
  type        = string
  default     = null
}

variable "endpoint_security_group_id" {
  description = "Security group of the interface VPC endpoints of the AWS APIs (from the security-groups module: 443 from the control plane, the Lambdas and the hosts)."
  type        = string
}

variable "bedrock_endpoint_security_group_id" {
  description = "Security group of the bedrock-runtime interface endpoint (from the security-groups module: 443 from the workspace tasks only)."
  type        = string
}

variable "s3_bucket_arns" {
  description = "Buckets of the estate reachable through the S3 gateway endpoint (besides ECR's layer bucket)."
  type        = list(string)
}

variable "enable_resolver_query_logging" {
  description = "Log every DNS query of the VPC (with the DNS Firewall's verdict) to a CloudWatch log group."
  type        = bool
  default     = true
}

variable "interface_endpoint_services" {
  description = "Interface VPC endpoint service suffixes (com.amazonaws.<region>.<suffix>)."
  type        = list(string)
  default = [
    "ecr.api",
    "ecr.dkr",
    "logs",
    "secretsmanager",
    "ssm",
    "ecs",
    "ecs-agent",
    "ecs-telemetry",
    "sts",
    "bedrock-runtime",
  ]
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
