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
  description = "The two availability zones of the subnets (named explicitly, so that the layout never moves when AWS adds a zone)."
  type        = list(string)

  validation {
    condition     = length(var.azs) == 2 && length(distinct(var.azs)) == 2
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
  description = "Security group of the interface VPC endpoints (from the security-groups module: 443 from inside the VPC)."
  type        = string
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
