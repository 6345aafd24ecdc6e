# Production sizes (seeds: c6i.2xlarge, ASG 2-10 with a warm pool, control plane 2-4 tasks
# at 70 % CPU, Redis Multi-AZ on cache.r6g.large).
# Deployment-specific values (images, certificate, bucket, Lambda zips, model ARNs) go in
# deploy.auto.tfvars next to this file: see docs/deploy.md.
name   = "ws-production"
region = "us-east-1"
azs    = ["us-east-1a", "us-east-1b"]

instance_type      = "c6i.2xlarge"
asg_min_size       = 2
asg_max_size       = 10
warm_pool_min_size = 2

control_plane_cpu       = 2048
control_plane_memory    = 4096
control_plane_min_count = 2
control_plane_max_count = 4

redis_node_type          = "cache.r6g.large"
redis_num_cache_clusters = 2
redis_multi_az           = true

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
