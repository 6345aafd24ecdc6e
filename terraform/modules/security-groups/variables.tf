variable "name" {
  description = "Name prefix of the security groups."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the security groups."
  type        = string
}

variable "alb_ingress_cidr_blocks" {
  description = "CIDR blocks allowed to call the internal control-plane ALB on 443 (the backend's subnets)."
  type        = list(string)
  default     = []
}

variable "alb_ingress_security_group_ids" {
  description = "Security groups allowed to call the internal control-plane ALB on 443 (the backend's tasks)."
  type        = list(string)
  default     = []
}

variable "control_plane_port" {
  description = "Port the control-plane container listens on."
  type        = number
  default     = 8080
}

variable "workspace_agent_port" {
  description = "Port the workspace agent listens on inside each workspace task."
  type        = number
  default     = 9000
}

variable "redis_port" {
  description = "Redis port."
  type        = number
  default     = 6379
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint (control plane, Lambdas and hosts reach S3 through it)."
  type        = string
}

variable "egress_prefix_list_id" {
  description = "Managed prefix list of the allowed external destinations of workspaces (from the dns-firewall module; kept current by the egress-sync Lambda)."
  type        = string
}

variable "egress_prefix_list_max_entries" {
  description = "max_entries of the egress prefix list: its weight, i.e. how many rules each reference to it counts against the security group quota."
  type        = number
}

variable "rules_per_security_group" {
  description = "The account's quota of inbound (and, separately, outbound) rules per security group (Service Quotas L-0EA8095F, default 60). Every group refuses to plan over it."
  type        = number
  default     = 60
}

variable "tags" {
  description = "Tags added to every security group."
  type        = map(string)
  default     = {}
}
