# Staging sizes (seeds: c6i.xlarge x2, ~8-10 workspaces per host; cache.t3.micro).
# Deployment-specific values (images, certificate, bucket, Lambda zips, model ARNs) go in
# deploy.auto.tfvars next to this file: see docs/deploy.md.
name   = "ws-staging"
region = "us-east-1"
azs    = ["us-east-1a", "us-east-1b"]

instance_type      = "c6i.xlarge"
asg_min_size       = 2
asg_max_size       = 4
warm_pool_min_size = 1

control_plane_cpu       = 1024
control_plane_memory    = 2048
control_plane_min_count = 1
control_plane_max_count = 2

redis_node_type          = "cache.t3.micro"
redis_num_cache_clusters = 1
redis_multi_az           = false

log_retention_days = 365

allowed_domains = [
  "amazonaws.com",
  "*.amazonaws.com",
  "*.ec2.internal",
  "*.compute.internal",
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
]
