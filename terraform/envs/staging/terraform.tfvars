# Staging sizes (seeds: c6i.xlarge x2; cache.t3.micro). A c6i.xlarge (4 vCPU, 8 GiB) holds
# 3 workspaces: each task is memory-bound at 2.3 GiB (agent 2 GiB + sidecar 256 MiB) and
# 1 vCPU, with ~1 GiB left to the OS, Docker and the ECS agent.
# Deployment-specific values (images, certificate, bucket, Lambda zips, model ARNs) go in
# deploy.auto.tfvars next to this file: see docs/deploy.md.
name   = "ws-staging"
region = "us-east-1"

# Distinct per environment; the two AZs come from the region (the first two available).
vpc_cidr = "10.20.0.0/16"

instance_type       = "c6i.xlarge"
asg_min_size        = 2
asg_max_size        = 4
warm_pool_min_size  = 1
workspaces_per_host = 3

control_plane_cpu       = 1024
control_plane_memory    = 2048
control_plane_min_count = 1
control_plane_max_count = 2

redis_node_type          = "cache.t3.micro"
redis_num_cache_clusters = 1
redis_multi_az           = false

log_retention_days = 365

# External names only: the AWS names the estate resolves are derived from the region
# (composition/main.tf, local.aws_domains).
allowed_domains = [
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
]
