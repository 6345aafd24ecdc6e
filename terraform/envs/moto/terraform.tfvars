# The moto test environment: the production composition against moto_server, small sizes,
# disposable, with the features moto cannot emulate faithfully switched off.
name       = "ws-moto"
region     = "us-east-1"
azs        = ["us-east-1a", "us-east-1b"]
disposable = true

enable_dns_firewall            = false # moto has no Route 53 Resolver DNS Firewall API
manage_account_settings        = false # moto lacks ecs:PutAccountSettingDefault
enable_service_autoscaling     = false # moto lacks application-autoscaling:ListTagsForResource
enable_redis_replication_group = false # moto's replication groups lose member clusters and settings on read

instance_type      = "c6i.xlarge"
asg_min_size       = 2
asg_max_size       = 4
warm_pool_min_size = 1

control_plane_min_count = 2
control_plane_max_count = 4

redis_node_type          = "cache.t3.micro"
redis_num_cache_clusters = 2
redis_multi_az           = true

bucket_name         = "ws-moto-workspaces"
agent_image         = "example.invalid/workspace:test"
proxy_image         = "example.invalid/proxy-sidecar:test"
control_plane_image = "example.invalid/control-plane:test"
certificate_arn     = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
bedrock_model_arns  = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"]

alb_ingress_cidr_blocks = ["10.1.0.0/16"]

allowed_domains = [
  "amazonaws.com",
  "*.amazonaws.com",
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
]
