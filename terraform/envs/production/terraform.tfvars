# Production sizes (seeds: c6i.2xlarge, ASG 2-10 with a warm pool, control plane 2-4 tasks
# at 70 % CPU, Redis Multi-AZ on cache.r6g.large). A c6i.2xlarge (8 vCPU, 16 GiB) holds 6
# workspaces of 2.3 GiB / 1 vCPU each (memory-bound, ~1 GiB left to the host).
# Deployment-specific values (images, certificate, bucket, Lambda zips, model ARNs) go in
# deploy.auto.tfvars next to this file: see docs/deploy.md.
name   = "ws-production"
region = "us-east-1"

# Distinct per environment; the two AZs come from the region (the first two available).
vpc_cidr = "10.30.0.0/16"

instance_type       = "c6i.2xlarge"
asg_min_size        = 2
asg_max_size        = 10
warm_pool_min_size  = 2
workspaces_per_host = 6

control_plane_cpu       = 2048
control_plane_memory    = 4096
control_plane_min_count = 2
control_plane_max_count = 4

redis_node_type          = "cache.r6g.large"
redis_num_cache_clusters = 2
redis_multi_az           = true

log_retention_days = 365

# External names only: the AWS names the estate resolves are derived from the region
# (composition/main.tf, local.aws_domains).
allowed_domains = [
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
]
