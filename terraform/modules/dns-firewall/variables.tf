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
  description = "Maximum number of CIDR entries of the egress prefix list. Each security group rule referencing the list counts this many rules against the group's quota (60 by default, shared with the group's other rules): keep it below the quota."
  type        = number
  default     = 50

  validation {
    condition     = var.egress_prefix_list_max_entries >= 1 && var.egress_prefix_list_max_entries <= 1000
    error_message = "egress_prefix_list_max_entries must be in 1..1000."
  }
}

variable "mutation_protection" {
  description = "Protect the VPC association from changes and removal (false only to tear the environment down)."
  type        = bool
  default     = true
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
