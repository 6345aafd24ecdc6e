variable "name" {
  description = "Name prefix of the firewall resources and of the prefix list."
  type        = string
}

variable "vpc_id" {
  description = "VPC whose DNS queries the firewall filters."
  type        = string
}

variable "enabled" {
  description = "Create the Route 53 Resolver DNS Firewall (false only where the API is not available, e.g. the moto test environment)."
  type        = bool
  default     = true
}

variable "allowed_domains" {
  description = "Domains that may be resolved from the VPC, in Route 53 Resolver DNS Firewall syntax (\"example.com\", \"*.example.com\"). Everything else gets NXDOMAIN."
  type        = list(string)

  validation {
    condition     = length(var.allowed_domains) > 0 && !contains(var.allowed_domains, "*")
    error_message = "allowed_domains must name at least one domain and must not contain the bare wildcard \"*\"."
  }
}

variable "association_priority" {
  description = "Priority of the rule group association on the VPC (101-9900)."
  type        = number
  default     = 101
}

variable "egress_prefix_list_max_entries" {
  description = "Maximum number of CIDR entries of the egress prefix list (each SG rule referencing it counts this many rules against the SG quota)."
  type        = number
  default     = 60
}

variable "egress_prefix_list_initial_entries" {
  description = "Initial CIDR entries of the egress prefix list. Later changes are made by the egress-sync Lambda and ignored by Terraform."
  type = list(object({
    cidr        = string
    description = string
  }))
  default = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
